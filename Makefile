# Two entry points for a new user: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: demo test docs bench tables install clean fashion-mnist fashion-mnist-table claims

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

# Every benchmark (about 4 minutes on 2 cores); writes benchmarks/RESULTS.md.
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/run_all.py $(BENCH_ARGS)

# Rerun the tables of README, docs/ and experiments/README by the commands they name; prints old
# against new, edits nothing. TABLES_ARGS="--only pendulum" reruns one, "--list" names them.
tables: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/tables.py $(TABLES_ARGS)

# Fashion-MNIST's four IDX files from Debian's dataset-fashion-mnist (data.name: fashion_mnist reads
# them there by default); sudo only when not already root.
FASHION_MNIST_ROOT := /usr/share/datasets/fashion-mnist
fashion-mnist:
	$(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y dataset-fashion-mnist
	@echo "Fashion-MNIST IDX files in $(FASHION_MNIST_ROOT):" && ls $(FASHION_MNIST_ROOT)

# docs/images.md's Fashion-MNIST table: the five arms of experiments/fashion-mnist-conv.yaml over
# seeds 0-4, each dense student converted at 16/32/64 steps, then compare. Long on a CPU (about
# two hours a seed on 2 cores): FM_ARGS="--set device=cuda" where there is a GPU. The run files
# behind the table are committed in FM_OUT: the sweep resumes them (only runs not yet there are
# run) and convert keeps what it converted before, so the command finishes what is missing.
# One run at a time with both threads is faster than two runs of one thread each (a spiking
# epoch: 51 s alone against about 70 s each beside another); FM_JOBS=8 on a machine with many cores.
FM_OUT ?= experiments/results/fashion-mnist-conv
FM_JOBS ?= 1
fashion-mnist-table: $(STAMP)
	$(PY) -m tempdistill sweep experiments/fashion-mnist-conv.yaml --jobs $(FM_JOBS) --out $(FM_OUT) $(FM_ARGS)
	for f in $(FM_OUT)/fashion-mnist-conv-dense-kd-s*.h5; do $(PY) -m tempdistill convert $$f --steps 16,32,64 || exit 1; done
	$(PY) -m tempdistill compare $(FM_OUT)

# experiments/CLAIMS.md, version 2: about 6 hours on 2 cores. Every stage's complete runs land
# in the committed ledger CLAIMS_LEDGER (a few KB a run), so the study is resumable across
# machines and sessions: stop it with Ctrl-C, commit the ledger, run the same command again.
CLAIMS_LEDGER ?= experiments/results/claims-v2
CLAIMS_JOBS ?= 2
claims: $(STAMP)
	$(PY) -m tempdistill claims experiments/claims.yaml --jobs $(CLAIMS_JOBS) --ledger $(CLAIMS_LEDGER) $(CLAIMS_ARGS)

clean:
	rm -rf runs site .pytest_cache
