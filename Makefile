# Two commands set everything up on a fresh machine:
#   make train   create .venv, install embcli, train on the embedded corpus (offline)
#   make test    create .venv, install embcli with its test tools, run the tests
#                (make test-fast: all but the tests marked slow, for the edit-test loop)
# TORCH is the torch requirement installed first. The default is the CPU build that lies on the
# development machines' disk; with a GPU, give your own (e.g. make install TORCH="torch>=2.4").

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: install train test test-fast lint bench wheel clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

train: install
	$(BIN)/embcli train

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check embcli tests bench tools

bench: install
	$(BIN)/python bench/query.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/tokenize_speed.py

wheel: install
	$(BIN)/python -m build --wheel --outdir dist .

clean:
	rm -rf $(VENV) dist build .pytest_cache
