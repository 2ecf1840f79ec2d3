# Two entry points for a new user: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: demo test bench tables install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,ray]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m tempdistill.demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q

# Every benchmark (about 20 minutes on 2 cores); writes benchmarks/RESULTS.md.
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/run_all.py $(BENCH_ARGS)

# Rerun the README and experiments/README tables by the commands they name; prints old against
# new, edits nothing. TABLES_ARGS="--only pendulum" reruns one, "--list" names them.
tables: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/tables.py $(TABLES_ARGS)

clean:
	rm -rf runs .pytest_cache
