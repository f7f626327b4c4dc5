#!/usr/bin/env bash
# Installs what Mizugiwa's build and tests need on a Debian machine, idempotently:
# Debian packages (only those missing), then the Python virtual environment for the interop
# peers. Safe to run again and again; it does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

# faketime: the clock-skew drill runs a daemon under libfaketime.
DEBIAN_PACKAGES=(pkg-config libsqlite3-dev sqlite3 build-essential python3-venv chromium faketime)
# Drone imagery: the OpenCV modules the `opencv` crate is built with (videoio, imgcodecs,
# imgproc; their -dev packages bring core), not all of libopencv-dev (VTK, contrib, dnn: about
# 100 more packages). Without libopencv-dev there is no opencv4.pc, so .cargo/config.toml tells
# the crate where OpenCV is. Its binding generator needs libclang and the clang binary.
DEBIAN_PACKAGES+=(libopencv-videoio-dev libopencv-imgcodecs-dev libopencv-imgproc-dev clang libclang-dev)
# Maritime picture: GDAL reads and writes the scenes (the `gdal` crate links libgdal and picks
# its prebuilt bindings by the version pkg-config reports).
DEBIAN_PACKAGES+=(libgdal-dev)
# Node.js and npm build the dashboard's assets; take Debian's only where none is installed.
command -v npm >/dev/null 2>&1 || DEBIAN_PACKAGES+=(nodejs npm)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Python interop peers (pyais, pymavlink, MAVSDK, taky, onnxruntime, ...) live in .venv,
# pinned in requirements-interop.txt. Reinstalled only when that file changes.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements-interop.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  grep -qvE '^\s*(#|$)' requirements-interop.txt && .venv/bin/pip install -q --disable-pip-version-check -r requirements-interop.txt
  echo "$want" > "$stamp"
fi

# The dashboard's npm packages (MapLibre GL JS, topojson-client, the Natural Earth basemap in
# world-atlas, playwright-core for the browser test), pinned in command/web/package-lock.json.
# The command crate embeds them at build time. Reinstalled only when the lock file changes.
web=command/web
stamp=$web/node_modules/.lock.sha
want=$(sha256sum $web/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  (cd $web && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi
