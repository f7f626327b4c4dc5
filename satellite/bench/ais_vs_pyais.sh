#!/usr/bin/env bash
# AIS decode throughput, ours against pyais, on the same file in the same run, one core each.
# Writes the "AIS decode" section of satellite/BENCHMARKS.md (other sections are left alone).
#
#   satellite/bench/ais_vs_pyais.sh [FILE] [SECONDS]
#
# pyais comes from PyPI into target/pyais-venv unless PYTHON names an interpreter that has it.
set -euo pipefail
cd "$(dirname "$0")/../.."

FILE=${1:-satellite/testdata/ais/pyais-nmea_data_sample.txt}
SECONDS_EACH=${2:-5}
OUT=satellite/BENCHMARKS.md

PYTHON=${PYTHON:-target/pyais-venv/bin/python}
if ! "$PYTHON" -c 'import pyais' 2>/dev/null; then
  python3 -m venv target/pyais-venv
  target/pyais-venv/bin/pip install -q --disable-pip-version-check pyais
  PYTHON=target/pyais-venv/bin/python
fi

cargo build --release -q -p mizugiwa-satellite --example ais_bench
load=$(cut -d' ' -f1-3 /proc/loadavg)
ours=$(target/release/examples/ais_bench "$FILE" "$SECONDS_EACH")
theirs=$("$PYTHON" satellite/bench/pyais_bench.py "$FILE" "$SECONDS_EACH")
echo "$ours"
echo "$theirs"

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
OURS="$ours" THEIRS="$theirs" FILE="$FILE" LOAD="$load" CPU="$cpu" CORES="$(nproc)" \
RUSTC="$(rustc -V)" PYV="$("$PYTHON" -V 2>&1)" OUT="$OUT" python3 - <<'PY'
import datetime, json, os, pathlib

ours, theirs = json.loads(os.environ["OURS"]), json.loads(os.environ["THEIRS"])
lines_per_pass = ours["lines"] // max(ours["passes"], 1)
def row(r):
    return (f"| {r['decoder']} | {r['lines_per_s']:,} | {r['messages_per_s']:,} | "
            f"{r['messages_per_cpu_s']:,} | {r['messages'] // max(r['passes'], 1)} |")
ratio = ours["messages_per_cpu_s"] / theirs["messages_per_cpu_s"]
extra = theirs["messages"] // max(theirs["passes"], 1) - ours["messages"] // max(ours["passes"], 1)
section = f"""<!-- ais-bench:start -->
## AIS decode

`satellite/bench/ais_vs_pyais.sh`, {datetime.date.today().isoformat()}: every line of
`{os.environ['FILE']}` ({lines_per_pass} lines) through one decoder (ours: `Decoder::feed_line`;
pyais: its stream reader, which also joins fragments and reads tag blocks), repeated for
{ours['seconds']:.0f} s, one core each, same run.

| decoder | lines/s | messages/s (wall) | messages/CPU-s | messages per pass |
|---|---|---|---|---|
{row(ours)}
{row(theirs)}

- Ours: {ours['messages_per_cpu_s'] / 1e6:.2f} M messages per CPU-second, {ratio:.0f}x pyais (target: at
  least 2 M/s on one core).
- pyais decodes {extra} more messages per pass: the binary and other types we refuse as
  unsupported.
- CPU seconds are the fair number on a shared machine: wall time also counts other processes'
  turns (load average at the start: {os.environ['LOAD']}).
- Machine: {os.environ['CPU']}, {os.environ['CORES']} cores; {os.environ['RUSTC']}, release
  profile; {os.environ['PYV']}, {theirs['decoder']}.
<!-- ais-bench:end -->
"""
path = pathlib.Path(os.environ["OUT"])
text = path.read_text() if path.exists() else "# Benchmarks of `satellite/`\n\n"
start, end = "<!-- ais-bench:start -->", "<!-- ais-bench:end -->\n"
if start in text and end in text:
    text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + section
path.write_text(text)
print(f"wrote {path}")
PY
