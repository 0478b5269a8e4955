# Tributary: the commands a person (and CI) runs. See README.md.
SHELL := /bin/bash
CACHE_DIR ?= /var/cache/tributary
export CARGO_TARGET_DIR ?= $(CACHE_DIR)/target
export TRIBUTARY_PYTHON ?= $(CACHE_DIR)/venv/bin/python
export TRIBUTARY_CACHE_DIR ?= $(CACHE_DIR)
export TRIBUTARY_JARS_DIR ?= $(CACHE_DIR)/jars
INFRA_DIR ?= $(CACHE_DIR)/infra
# clean-delta-tables removes test leftovers older than this (minutes).
OLDER_THAN_MIN ?= 60
CARGO ?= cargo
TEST_THREADS ?= 2
# The binary under test carries the test failpoints (crates/tributary: feature failpoints).
TEST_FEATURES ?= --features tributary/failpoints

# PostgreSQL: `make test` also runs PG_SUITES against these majors (Debian's
# 15 runs in the workspace pass); `make test-pg-matrix` against PG_MATRIX.
# Builds of majors Debian lacks come from npm (scripts/fetch_postgres.sh).
PG_EXTRA_MAJORS ?= 14 18
PG_MATRIX ?= 14 15 16 17 18
PG_SUITES ?= stream_postgres snapshot_restart_postgres types_postgres bad_input_postgres

.PHONY: setup build test test-unit test-integration test-spark test-alerting test-pg-versions test-pg-matrix \
	demo bench bench-large bench-snapshot bench-s3 fmt lint clean-delta-tables infra-up infra-down

setup:  ## install Debian packages and the Python venv the tests need
	TRIBUTARY_CACHE_DIR=$(CACHE_DIR) TRIBUTARY_PG_MAJORS="$(PG_EXTRA_MAJORS)" bash scripts/setup.sh

build:
	$(CARGO) build --workspace --locked

test: setup  ## the whole test suite: installs what is missing, then runs everything (PostgreSQL suites also on 14 and 18)
	@status=0; \
	$(CARGO) test --workspace --locked $(TEST_FEATURES) --no-fail-fast -- --test-threads=$(TEST_THREADS) || status=1; \
	$(MAKE) --no-print-directory test-pg-versions PG_VERSIONS="$(PG_EXTRA_MAJORS)" || status=1; \
	exit $$status

test-pg-versions:  ## PG_SUITES against each major of PG_VERSIONS (TRIBUTARY_PG_VERSION=<major>)
	@failed=""; for v in $(PG_VERSIONS); do \
	  echo "== PostgreSQL $$v: $(PG_SUITES)"; start=$$(date +%s); \
	  TRIBUTARY_PG_VERSION=$$v $(CARGO) test --locked -p tributary $(TEST_FEATURES) --no-fail-fast \
	    $(addprefix --test ,$(PG_SUITES)) -- --test-threads=$(TEST_THREADS) || failed="$$failed $$v"; \
	  echo "== PostgreSQL $$v: $$(( $$(date +%s) - start )) s"; \
	done; \
	if [ -n "$$failed" ]; then echo "PostgreSQL suites failed on:$$failed"; exit 1; fi

test-pg-matrix: setup  ## the PostgreSQL suites against every major of PG_MATRIX (14 to 18)
	TRIBUTARY_CACHE_DIR=$(CACHE_DIR) bash scripts/fetch_postgres.sh $(PG_MATRIX)
	$(MAKE) --no-print-directory test-pg-versions PG_VERSIONS="$(PG_MATRIX)"

test-unit:
	$(CARGO) test --workspace --locked --lib --bins

test-integration: setup  ## the integration tests only (tests/ of every crate)
	$(CARGO) test --workspace --locked $(TEST_FEATURES) --tests -- --test-threads=$(TEST_THREADS)

test-spark: setup  ## Spark + Delta verification (one JVM per test binary)
	$(CARGO) test --locked -p tributary-testkit --test spark --test s3 -- --test-threads=$(TEST_THREADS)
	@if ls crates/tributary/tests/spark_*.rs >/dev/null 2>&1; then \
	  for t in crates/tributary/tests/spark_*.rs; do \
	    $(CARGO) test --locked -p tributary $(TEST_FEATURES) --test "$$(basename $$t .rs)" -- --test-threads=$(TEST_THREADS) || exit 1; \
	  done; \
	fi

test-alerting: setup  ## AlertManager routes, inhibition, silences, webhooks; Prometheus config and rules
	$(CARGO) test --locked -p tributary-testkit --test alertmanager --test prometheus --test webhook \
	  -- --test-threads=$(TEST_THREADS)

infra-up: setup  ## start the whole stack on loopback for a person; prints URLs and ports
	@mkdir -p $(INFRA_DIR)
	@if [ -f $(INFRA_DIR)/infra.pid ] && kill -0 "$$(cat $(INFRA_DIR)/infra.pid)" 2>/dev/null \
	    && [ -f $(INFRA_DIR)/infra.txt ]; then \
	  echo "infra: already up (pid $$(cat $(INFRA_DIR)/infra.pid))"; cat $(INFRA_DIR)/infra.txt; exit 0; \
	fi
	$(CARGO) build --locked -q -p tributary-testkit --example infra
	@rm -f $(INFRA_DIR)/infra.txt
	@nohup $(CARGO_TARGET_DIR)/debug/examples/infra --state-dir $(INFRA_DIR) $(INFRA_ARGS) \
	  >$(INFRA_DIR)/infra.log 2>&1 </dev/null & echo $$! >$(INFRA_DIR)/infra.pid
	@pid=$$(cat $(INFRA_DIR)/infra.pid); \
	for _ in $$(seq 1 2400); do \
	  [ -f $(INFRA_DIR)/infra.txt ] && { cat $(INFRA_DIR)/infra.txt; exit 0; }; \
	  kill -0 $$pid 2>/dev/null || { echo "infra: failed to start; log $(INFRA_DIR)/infra.log:"; tail -30 $(INFRA_DIR)/infra.log; rm -f $(INFRA_DIR)/infra.pid; exit 1; }; \
	  sleep 0.1; \
	done; echo "infra: not up after 240 s; log $(INFRA_DIR)/infra.log"; exit 1

infra-down:  ## stop what infra-up started
	@if [ ! -f $(INFRA_DIR)/infra.pid ] || ! kill -0 "$$(cat $(INFRA_DIR)/infra.pid)" 2>/dev/null; then \
	  echo "infra: not running"; rm -f $(INFRA_DIR)/infra.pid; exit 0; \
	fi; \
	pid=$$(cat $(INFRA_DIR)/infra.pid); kill -TERM $$pid; \
	for _ in $$(seq 1 600); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	if kill -0 $$pid 2>/dev/null; then echo "infra: pid $$pid still running after 60 s"; exit 1; fi; \
	rm -f $(INFRA_DIR)/infra.pid; echo "infra: stopped"

demo: setup  ## local MariaDB + sample schema + a stream of changes -> ./delta-tables (S3=1: into s3:// on a local S3 server)
	S3=$(S3) bash scripts/demo.sh

bench: setup  ## rows/s, MB/s and peak RSS, binlog -> Delta and pgoutput -> Delta, compaction / vacuum cost (release build)
	$(CARGO) bench --locked -p tributary --bench binlog_to_delta
	$(CARGO) bench --locked -p tributary --bench pg_to_delta
	$(CARGO) bench --locked -p tributary --bench maintenance
	BENCH_SNAPSHOT_ROWS=1000000 $(CARGO) bench --locked -p tributary --bench snapshot
	BENCH_TABLE_ROWS=1000000 $(CARGO) bench --locked -p tributary --bench random_updates

bench-large: setup  ## random-key updates into tables of 1M, 10M and 30M rows, deletion vectors and copy-on-write (release build; ~25 min, ~12 GB of disk)
	$(CARGO) bench --locked -p tributary --bench random_updates

bench-snapshot: setup  ## the chunked initial snapshot of 10M rows at parallelism 1, 2 and 4, and in one transaction (release build)
	$(CARGO) bench --locked -p tributary --bench snapshot

bench-s3: setup  ## the insert and random-key update benchmarks into s3:// on the local S3 server, with requests per 1000 rows
	BENCH_LAKE=s3 $(CARGO) bench --locked -p tributary --bench binlog_to_delta

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

clean-delta-tables:  ## remove test leftovers (kept per-run Delta table roots) older than OLDER_THAN_MIN minutes
	$(CARGO) run --locked -q -p tributary -- clean --older-than $(OLDER_THAN_MIN)m
