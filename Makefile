# Two commands do all set-up on a fresh machine:  make repro  |  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg
# dvc runs stage commands with `python`: make it the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test install bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	# torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

# Tests never reach a model hub (`make repro` may: it evaluates what params.yaml lists, by default nothing).
test: export HF_HUB_OFFLINE := 1
test: export HF_DATASETS_OFFLINE := 1
test: export TRANSFORMERS_OFFLINE := 1
test: $(STAMP)
	bash tests/setup_browser.sh
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/repro_time.py

clean-venv:
	rm -rf $(VENV)
