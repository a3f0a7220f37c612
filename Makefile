# zfs-reconciler — developer entry points. `make install` first; everything runs in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint typecheck test schema bench check fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

lint:
	$(BIN)/ruff check reconciler tests platform_tests
	$(BIN)/ruff format --check reconciler tests platform_tests

typecheck:
	$(BIN)/mypy

test:
	$(BIN)/pytest -q

schema:
	$(BIN)/python -m reconciler schema > schemas/manifests.schema.json

bench: vm-setup
	$(BIN)/python -m tests.bench.plan_bench --scenario steady
	$(BIN)/python -m tests.bench.plan_bench --scenario prune
	$(BIN)/python -m tests.bench.parse_bench
	$(BIN)/python -m tests.bench.validate_bench
	$(BIN)/python -m tests.bench.loop_bench
	$(BIN)/python -m platform_tests.bench_reconcile
	$(BIN)/python -m platform_tests.bench_watch

check: lint typecheck test

# The manifest fuzz and models-vs-JSON-Schema tests in their slow, deeper mode: thousands of
# inputs per test instead of the hundreds `make test` runs (ZFS_RECONCILER_FUZZ_EXAMPLES=N sets N).
fuzz:
	ZFS_RECONCILER_FUZZ=deep $(BIN)/pytest -q --hypothesis-show-statistics \
		tests/test_fuzz_manifests.py tests/test_schema_agreement.py

# Platform tests: real OpenZFS 2.3 in a qemu guest (docs/platform-tests.md). vm-setup installs
# Debian packages with apt when they are missing (qemu, zfs-dkms, ..., and sanoid: the platform
# tests run the real syncoid in the guest) and fills /var/cache/zfs-reconciler-vm.
.PHONY: vm-setup test-platform demo

vm-setup:
	bash platform_tests/harness/setup.sh

test-platform: vm-setup
	$(BIN)/pytest -q platform_tests

# The main job: the example manifests applied to real pools `tank` and `backup` in the guest.
demo: vm-setup
	$(BIN)/python -m platform_tests.demo

# zfs-reconciler side by side with sanoid + syncoid, bzfs and zfs-autobackup in the guest
# (docs/benchmarks.md, section (f)). peers-setup installs them: Debian's `sanoid` with apt, and
# pinned bzfs + zfs-autobackup in their own venv under the VM cache. BENCH_PEERS_LARGE=1 adds
# P1 at 1,000 filesystems (hours under TCG).
.PHONY: peers-setup bench-peers
BENCH_PEERS_LARGE ?= 0

peers-setup:
	bash platform_tests/harness/peers-setup.sh

bench-peers: vm-setup peers-setup
	$(BIN)/python -m platform_tests.bench_peers --filesystems 100 --rounds 3 --workloads p1,p4 \
		$(if $(filter 1,$(BENCH_PEERS_LARGE)),--large 1000) --write-docs
