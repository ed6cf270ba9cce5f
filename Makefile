# Two commands on a fresh machine: `make demo` (set-up + grade the sample cohorts) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Pinned: a bare `torch` would pull a multi-GB CUDA build; CI machines hold this CPU wheel on disk.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.dev-installed
TESTDEPS := $(VENV)/.test-installed
DB     ?= .autograder/grades.db
JOBS   ?= 2
LABS   ?= lab1-mlp lab2-cnn lab3-autoencoder lab4-numpy-mlp
# Extra pytest arguments for `make test` and `make test-fast`, e.g. PYTEST_ARGS='-m slow --durations=25'.
PYTEST_ARGS ?=

.PHONY: install demo serve test test-fast lint typecheck bench schema image clean

install: $(STAMP)

# The labs' own packages (`packages:` in each lab.yaml) go into the venv too, for the local backend
# and the self-check; the docker backend builds an image per package list instead.
$(STAMP): pyproject.toml $(wildcard assignments/*/lab.yaml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[semantic]"
	$(BIN)/autograder sandbox packages --pip
	@touch $@

# Where a Docker engine answers, the cohort is graded in containers (the image is built first if it
# is missing or stale); elsewhere on the local backend, which says that it does not isolate.
demo: install
	@if $(BIN)/python -c "from autograder.sandbox.containers import engine; raise SystemExit(engine() is None)"; \
	then $(BIN)/autograder sandbox build --if-stale; fi
	@for lab in $(LABS); do \
		$(BIN)/autograder grade $$lab examples/submissions/$$lab --jobs $(JOBS) --db $(DB) || exit $$?; \
		$(BIN)/autograder feedback $$lab --db $(DB) -o feedback/$$lab || exit $$?; \
		$(BIN)/autograder report $$lab --db $(DB) -o feedback/$$lab/report.html || exit $$?; \
	done
	$(BIN)/autograder course results --db $(DB)
	@echo "Decide what waits for review in the browser, then export: make serve (it prints the address to open)"

# The TAs' review app over the demo's store, on 127.0.0.1 with a fresh token in the printed address.
serve: install
	$(BIN)/autograder serve --db $(DB) --course course.yaml

# The `test` extra, for the tests only: Ray (tests/test_ray.py starts a cluster on this machine), Playwright
# (tests/test_serve_browser.py drives Debian's Chromium through a TA's review) and httpx. `make demo` needs none.
$(TESTDEPS): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[semantic,test]"
	@touch $@

# Everything: the slow tests run real notebooks, sandboxes, a Ray cluster and a browser (about 45 minutes on 2 cores).
test: install $(TESTDEPS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The loop while working: all but the `slow` tests, in about two minutes.
test-fast: install $(TESTDEPS)
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS)

# ruff, mypy and the type stubs: the `dev` extra, installed on first use (the demo does not need them).
$(DEV): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[semantic,dev]"
	@touch $@

lint: $(DEV)
	$(BIN)/ruff check .

typecheck: $(DEV)
	$(BIN)/python -m mypy autograder

bench: install
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/backends.py
	$(BIN)/python benchmarks/reflections.py
	$(BIN)/python benchmarks/labs.py

# The docker backend's image: wheels downloaded on the host, so the build needs no package index.
image: install
	$(BIN)/autograder sandbox build --if-stale

schema: install
	$(BIN)/autograder schema -o schemas

clean:
	rm -rf $(VENV) .autograder schemas .pytest_cache feedback release exports
