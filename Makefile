# Two commands set everything up on a fresh machine:
#   make train   create .venv, install embcli, train on the embedded corpus (offline)
#   make test    create .venv, install embcli with its test tools, run the tests
#                (make test-fast: all but the tests marked slow, for the edit-test loop)
# The tests run side by side, a worker per core (pytest-xdist, -n auto): run one by one they keep
# a single core busy most of the time (imports, torch.compile, processes starting). Each worker
# computes with one thread (tests/conftest.py).
# TORCH is the torch requirement installed first. The default is the CPU build that lies on the
# development machines' disk; with a GPU, give your own (e.g. make install TORCH="torch>=2.4").

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

PY310   ?= $(HOME)/.pyenv/versions/3.10.13/bin/python
VENV310 ?= .venv310

.PHONY: install train test test-fast test-py310 lint bench wheel clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

train: install
	$(BIN)/embcli train

PYTEST := $(BIN)/python -m pytest -q -n auto --dist worksteal

test: install
	$(PYTEST)

test-fast: install
	$(PYTEST) -m "not slow"

# Python 3.10 is pyproject's floor. Its torch on the package index is the CUDA build (several GB),
# too much for CI, so on 3.10 the torch-free half is tested: configs (the tomli fallback), the
# query library and its rendering, the command line's parsing and errors.
test-py310:
	$(PY310) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install --quiet numpy tiktoken "typer>=0.12,<0.29" "rich>=13" safetensors \
		"tomli>=1.1" pytest hypothesis
	PYTHONPATH=$(CURDIR) $(VENV310)/bin/python -m pytest -q -p no:cacheprovider tests/test_render.py tests/test_config.py \
		tests/test_runs.py tests/test_layout.py tests/test_tokenizer.py tests/test_faults_cli.py \
		-k "not test_faults_cli or test_16 or test_17_the_machine or test_18 or test_20 or test_22"

lint: install
	$(BIN)/ruff check embcli tests bench tools

bench: install
	$(BIN)/python bench/query.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/tokenize_speed.py

wheel: install
	$(BIN)/python -m build --wheel --outdir dist .

clean:
	rm -rf $(VENV) $(VENV310) dist build .pytest_cache
