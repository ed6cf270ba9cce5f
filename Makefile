# Two commands on a fresh machine: `make demo` (set-up + grade the sample cohort) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Pinned: a bare `torch` would pull a multi-GB CUDA build; CI machines hold this CPU wheel on disk.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
DB     ?= .autograder/grades.db
JOBS   ?= 2

.PHONY: install demo test lint bench schema clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

demo: install
	$(BIN)/autograder grade lab1-mlp examples/submissions/lab1-mlp --jobs $(JOBS) --db $(DB)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/overhead.py

schema: install
	$(BIN)/autograder schema -o schemas

clean:
	rm -rf $(VENV) .autograder schemas .pytest_cache
