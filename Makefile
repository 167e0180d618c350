# The README's two commands: `make demo` and `make test`. Each creates .venv on a
# fresh clone and installs what it needs from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-slow test-interop lint typecheck bench fuzz clean screenshot

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check fairdht tests scripts
	$(VENV)/bin/ruff format --check fairdht tests scripts
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	sh scripts/ensure_chromium.sh
	sh scripts/ensure_qstat.sh
	sh scripts/ensure_nftables.sh
	$(VENV)/bin/pytest -n 2 -m "not slow" --timeout 300

# The README's dashboard picture and the History page picture in docs/serverlist.md,
# taken by the dashboard's browser test; only this target writes into docs/img (make test
# never does), so the pictures are always ones the test took.
screenshot: $(STAMP)
	sh scripts/ensure_chromium.sh
	FAIRDHT_SCREENSHOT_DIR=docs/img $(VENV)/bin/pytest tests/dashboard -p no:randomly -n 0 --timeout 300

test-slow: $(STAMP)
	$(VENV)/bin/pytest -n 2 -m slow --timeout 3600

# A real OpenArena server behind the master-server gateway (docs/gateway.md); not in CI:
# installs Debian's openarena-server (about 420 MB) and qstat when missing.
test-interop: $(STAMP)
	sh scripts/ensure_qstat.sh
	sh scripts/ensure_openarena.sh
	$(PY) scripts/interop_openarena.py

bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(PY) scripts/bench/run_all.py

# Coverage-guided fuzzing of every decoder (issue 9's optional long run): 10 min each.
fuzz: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check atheris
	for t in record datagram frame probe hello dpmaster cube2; do \
		$(PY) scripts/fuzz/fuzz_decoders.py $$t -max_total_time=600 || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
