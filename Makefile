# Two commands: `make run` sets up and launches the app, `make test` sets up and runs the tests.
# Both create (or reuse) .venv and install the pinned requirements; `make install` and `make test`
# also install the browser test's Chromium (browser-deps). `make test-fast` leaves out the tests
# marked slow, browser and load (pyproject.toml) for the inner loop, one pytest-xdist worker per core.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast install browser-deps bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	# torch first: basicsr is source-only and must build against it (no build isolation).
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --no-build-isolation -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $(STAMP)

install: $(STAMP) browser-deps

# Debian's chromium for tests/test_browser.py (Playwright drives it). Installed with apt-get when
# missing and this is root; otherwise says how, and the browser test skips saying the same.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the browser test (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || \
		echo "could not install chromium with apt-get: the browser test will be skipped"; \
	else echo "chromium is missing: the browser test will be skipped (install it: sudo apt-get install -y chromium)"; fi

run: $(STAMP)
	GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 $(PY) app.py $(ARGS)

TEST_ENV := HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False

test: $(STAMP) browser-deps
	$(TEST_ENV) $(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -n auto -m "not slow and not browser and not load" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/classical.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
