# Tributary: the commands a person (and CI) runs. See README.md.
SHELL := /bin/bash
CACHE_DIR ?= /var/cache/tributary
export CARGO_TARGET_DIR ?= $(CACHE_DIR)/target
export TRIBUTARY_PYTHON ?= $(CACHE_DIR)/venv/bin/python
CARGO ?= cargo
TEST_THREADS ?= 2

.PHONY: setup build test test-unit test-integration demo bench fmt lint clean-delta-tables

setup:  ## install Debian packages and the Python venv the tests need
	TRIBUTARY_CACHE_DIR=$(CACHE_DIR) bash scripts/setup.sh

build:
	$(CARGO) build --workspace --locked

test: setup  ## the whole test suite: installs what is missing, then runs everything
	$(CARGO) test --workspace --locked -- --test-threads=$(TEST_THREADS)

test-unit:
	$(CARGO) test --workspace --locked --lib --bins

demo: setup  ## local MariaDB + sample schema + a stream of changes -> ./delta-tables
	bash scripts/demo.sh

bench: setup  ## rows/s, MB/s and peak RSS, binlog -> Delta (release build)
	$(CARGO) build --release --locked -p tributary --bins --benches
	bash scripts/bench.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

clean-delta-tables:  ## remove test leftovers
	rm -rf $${TMPDIR:-/tmp}/tributary-tests
