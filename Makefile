# The two newcomer commands:  `make run` (the tiny benchmark) and `make test` (the test suite).
# Both install everything first: uv (into .tools/), then the locked environment (into .venv/).

UV := .tools/bin/uv
CORES ?= all
SNAKEMAKE_ARGS ?=
export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: run test lint install gpu-check

$(UV):
	python3 -m venv .tools
	# The machine's pip config may point at local wheels; uv itself comes from PyPI.
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= .tools/bin/pip install --quiet uv==0.13.9

# The environment, installed again only when the lock changes. Its bytecode is compiled then,
# once (about 50 s): with PYTHONDONTWRITEBYTECODE set, as on our machines, every job would
# otherwise compile torch's sources again (import torch + open_clip: 13-17 s, compiled 6.5 s).
# Checking the compiled files on every `make` would cost up to 8 s on a cold file cache.
.venv/.installed: $(UV) uv.lock pyproject.toml
	UV_COMPILE_BYTECODE=1 $(UV) sync --frozen --python python3
	touch $@

install: .venv/.installed

run: install
	$(UV) run --frozen snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

lint: install
	$(UV) run --frozen ruff check workflow tests
	$(UV) run --frozen ruff format --check workflow tests
	$(UV) run --frozen snakefmt --check Snakefile workflow/rules
	$(UV) run --frozen snakemake --lint

test: install lint
	$(UV) run --frozen pytest

# On a machine with one GPU: the paper tier's GPU work, small, on random-weight models (README).
gpu-check: install
	$(UV) run --frozen salmu gpu-check --out results/gpu-check/gpu_check.json
