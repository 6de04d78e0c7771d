# One command to set up and run the main job (`make demo`), one to set up and pass the tests (`make test`).
# Both create or refresh the virtual environment first; it is rebuilt whenever pyproject.toml or
# constraints.txt change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nodeprune-installed
EXTRAS ?= dev,data,plot,docs,transformers,timm

.PHONY: venv demo test lint typecheck unit docs bench bench-quick clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.2" -c constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	$(PY) -c "import torch, torchvision, zennit, torch_pruning, nodeprune; print('environment ready: torch', torch.__version__)"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

unit: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src tests examples benchmarks
	$(PY) -m ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

test: lint typecheck unit

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# passive OpenMP waiting for a shared machine; on a quiet one `make bench BENCH_ENV=` (up to 4x faster, see
# docs/benchmarks.md)
BENCH_ENV ?= OMP_WAIT_POLICY=PASSIVE

bench: $(STAMP)
	cd benchmarks && $(BENCH_ENV) $(abspath $(PY)) -m pytest -q -s -p no:cacheprovider --benchmark-only --slow \
		--rootdir . -c /dev/null test_speed_targets.py

bench-quick: $(STAMP)
	cd benchmarks && $(BENCH_ENV) $(abspath $(PY)) -m pytest -q -s -p no:cacheprovider --benchmark-only \
		--rootdir . -c /dev/null test_speed_targets.py

clean:
	rm -rf $(VENV) build dist site .pytest_cache .mypy_cache .ruff_cache results
