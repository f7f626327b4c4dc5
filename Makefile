# Mizugiwa: two commands on a fresh Debian machine.
#   make demo   installs what is missing, builds, and runs the demo deployment
#   make test   installs what is missing, builds, and runs every test
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: deps build test demo bench lint

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release --bin mizugiwa

# The Python with the interop peers (onnxruntime for the tract parity test, taky, pytak,
# MAVSDK and pymavlink for the drone ground station).
export MZ_PYTHON ?= $(CURDIR)/.venv/bin/python

# The drills' checker is tested against a deliberately broken build of the daemons, built on
# its own first (in the same cargo run its fault feature would reach the real binary). The
# benchmark binaries are not default members; they are built here so that they cannot rot
# unnoticed between `make bench` runs.
test: deps
	$(CARGO) build -p mizugiwa-broken-replica
	$(CARGO) build -p mizugiwa-sync-bench -p mizugiwa-command-bench
	$(CARGO) test --no-fail-fast

demo: build
	./target/release/mizugiwa demo

bench: deps
	.venv/bin/pip install -q --disable-pip-version-check -r requirements-bench.txt
	$(CARGO) run --release -p mizugiwa-sync-bench -- --out sync/BENCHMARKS.md
	$(CARGO) run --release -p mizugiwa-command-bench -- --out command/BENCHMARKS.md
	$(CARGO) run --release -p mizugiwa-drone --example gcs_bench -- --out drone/BENCHMARKS.md
	$(CARGO) run --release -p mizugiwa-satellite --example cfar_bench -- --out satellite/BENCHMARKS.md
	$(CARGO) bench -p mizugiwa-inspect --bench inspect
	$(CARGO) bench -p mizugiwa --bench gate_api

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
