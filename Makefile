# The README's two set-up commands live here: `make demo` and `make test`.
PY ?= python
# torch is installed first so pip never resolves a bare `torch` to a multi-GB CUDA build by accident;
# an existing torch (any recent version, CUDA or not) is kept.
TORCH ?= torch==2.13.0

.PHONY: install install-dev demo test bench

install:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[demo]"

install-dev:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,envs,vae]"

demo: install
	$(PY) -m dinoworld.cli demo --out demo_out

test: install-dev
	$(PY) -m pytest -q

bench: install-dev
	$(PY) benchmarks/streaming.py
