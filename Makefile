# The two commands: `make demo` and `make test`. Each sets up .venv on its own.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lab lint sandbox bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Re-install only when pyproject.toml changes; the package itself is editable.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/circtoolkit demo

sandbox: $(VENV)/.installed
	$(BIN)/circtoolkit sandbox

# the browser tests drive Debian's Chromium (never `playwright install`: no downloads here)
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& apt-get install -y -qq chromium >/dev/null; } || echo "no chromium: browser tests skip"

test: $(VENV)/.installed-test chromium
	$(BIN)/ruff check circtoolkit tests benchmarks
	$(BIN)/python -m pytest tests notebooks --nbval --nbval-sanitize-with notebooks/sanitize.cfg

lint: $(VENV)/.installed-test
	$(BIN)/ruff check circtoolkit tests benchmarks

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test,bench]'
	touch $(VENV)/.installed $(VENV)/.installed-test $@

bench: $(VENV)/.installed-bench
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/bench_client.py
	$(BIN)/python benchmarks/bench_delivery.py
	$(BIN)/python benchmarks/bench_listener.py

lab: $(VENV)/.installed-test
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
