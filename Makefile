# Two entry points for a new user: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: demo test docs bench tables install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,ray,docs]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m tempdistill.app.demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q

# The documentation (docs/, mkdocs.yml, the API reference from docstrings) into site/; any
# warning fails the build. tests/test_docs.py builds it the same way, so `make test` checks it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# Every benchmark (about 20 minutes on 2 cores); writes benchmarks/RESULTS.md.
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/run_all.py $(BENCH_ARGS)

# Rerun the tables of README, docs/ and experiments/README by the commands they name; prints old
# against new, edits nothing. TABLES_ARGS="--only pendulum" reruns one, "--list" names them.
tables: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/tables.py $(TABLES_ARGS)

clean:
	rm -rf runs site .pytest_cache
