# StreamLine: `make test` and `make demo` install everything they need (uv, then the locked venv).
SHELL := /bin/bash
ROOT := $(abspath .)
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(ROOT)/.tools/bin/uv)

export TMPDIR := $(ROOT)/.scratch/tmp
export AIRFLOW_HOME := $(ROOT)/.scratch/airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY := False
export DO_NOT_TRACK := 1
export UV_PROJECT_ENVIRONMENT := $(ROOT)/.venv

.PHONY: install test test-all lint typecheck unit demo bench check-mwaa clean

$(ROOT)/.tools/bin/uv:
	python3 -m venv $(ROOT)/.tools
	$(ROOT)/.tools/bin/pip install --quiet uv==$(UV_VERSION)

install: $(if $(filter $(ROOT)/.tools/bin/uv,$(UV)),$(ROOT)/.tools/bin/uv)
	@mkdir -p $(TMPDIR) $(AIRFLOW_HOME)
	$(UV) sync --locked --quiet

lint: install
	$(UV) run --locked ruff check framework generator tests benchmarks
	$(UV) run --locked ruff format --check framework generator tests benchmarks

typecheck: install
	$(UV) run --locked mypy

# Two pytest workers: the tests of the shared local stack (xdist group "stack") run in order on
# one, everything else on the other. Tests marked slow run in test-all only.
PYTEST_PARALLEL := -n 2 --dist loadgroup

test: lint typecheck
	$(UV) run --locked pytest $(PYTEST_PARALLEL) -m "not slow"

test-all: lint typecheck
	$(UV) run --locked pytest $(PYTEST_PARALLEL)

unit: install
	$(UV) run --locked pytest tests/unit

# The main job on the embedded default: moto + fakesnow servers, Firehose, real Airflow, a report.
demo: install
	$(UV) run --locked streamline validate
	$(UV) run --locked streamline demo

# `streamline deploy --check` on the oldest and newest MWAA Airflow of each line (.ci/mwaa-matrix):
# the bundle installed as MWAA installs it, in a cached venv of the image's Python, and its DAGs
# loaded and run once against the embedded stack. Run by .ci/run after `make test`.
MWAA_VERSIONS := 2.10.3 2.11.2 3.0.6 3.3.1

check-mwaa: install
	PATH="$(dir $(UV)):$$PATH" .ci/mwaa-matrix $(MWAA_VERSIONS)

# The benchmark suite (benchmarks/README.md, docs/benchmarks.md): tables, goals met / not met, a
# JSON record and a PNG plot per script in .scratch/bench (or $STREAMLINE_BENCH_OUT). About 21 min.
bench: install
	$(UV) run --locked python benchmarks/parse_time.py
	$(UV) run --locked python benchmarks/capacity.py
	$(UV) run --locked python benchmarks/latency.py

clean:
	rm -rf .scratch build
