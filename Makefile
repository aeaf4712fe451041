# polyio: the one entry point. `make help` lists the targets; `make test` is exactly what
# CI runs (.ci/run); `make demo` shows polyio servers and clients talking.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

CARGO ?= cargo
CC ?= gcc
NPM ?= npm
NODE ?= node
PREFIX ?= /usr/local
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

TOOLS := $(CURDIR)/.tools
CBINDGEN_VERSION := 0.29.4
CBINDGEN := $(TOOLS)/bin/cbindgen
MDBOOK_VERSION := 0.5.4
MDBOOK := $(TOOLS)/bin/mdbook
BUILD := $(CURDIR)/build

# The fault tests' LD_PRELOAD interposer (tests/faults/inject.c): makes sends fail with a
# chosen errno (ENOBUFS, ...); each suite also builds it itself when run on its own.
# Defined before the rules that name it as a prerequisite (expanded as they are read).
INJECT_SO := $(BUILD)/faults/libpolyio_inject.so

# Python: a venv inside the repo (gitignored); maturin gets its own target dir, because pyo3
# rebuilds whenever maturin and plain cargo share one.
PYTHON ?= python3
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
# redis and aiohttp: redis-py's asyncio client (on polyio's streams and on polyio's loop) and
# aiohttp's server and client (on polyio's loop) in the tests, against Debian's redis-server
# and curl, which deps-test installs.
PY_TOOLS := maturin==1.* pytest pytest-timeout uvloop==0.21.* mypy redis==8.1.0 aiohttp==3.*
# The venv is (re)provisioned when this list changes.
PY_TOOLS_ID := $(shell printf '%s' '$(PY_TOOLS)' | cksum | cut -d' ' -f1)
MATURIN_TARGET := $(CURDIR)/target/maturin
# What `make dist` needs beyond the test tools: auditwheel reads the wheel's manylinux tag.
DIST_PY_TOOLS := auditwheel==6.*
DIST := $(CURDIR)/dist
C_DIST_NAME := libpolyio-$(VERSION)-linux-x86_64

CFLAGS_STRICT := -std=c11 -Wall -Wextra -Werror -g -Iinclude
# What a Rust staticlib needs from the system (`rustc --print native-static-libs`).
RUST_SYS_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# ---- setup ---------------------------------------------------------------------------

$(CBINDGEN):
	$(CARGO) install cbindgen --version $(CBINDGEN_VERSION) --locked --root $(TOOLS) --quiet

# mdBook without its `serve` and `watch` features (an HTTP server and a file watcher the
# static build does not need, and most of its compile time).
$(MDBOOK):
	$(CARGO) install mdbook --version $(MDBOOK_VERSION) --locked --no-default-features --features search --root $(TOOLS) --quiet

.PHONY: deps-test deps-bench
deps-test: ## Install Debian packages the test suites need (valgrind, pkg-config, redis-server, cmake, curl)
	@missing=""; for p in valgrind pkg-config redis-server cmake curl; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

deps-bench: ## Install Debian packages the benchmark needs (libuv1-dev, wrk, redis-server)
	@if ! [ -e /usr/include/uv.h ]; then echo "installing libuv1-dev"; apt-get update -qq && apt-get install -y -qq libuv1-dev >/dev/null; fi
	@missing=""; for p in wrk redis-server; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

$(VENV)/.tools-stamp: $(VENV)/.tools-$(PY_TOOLS_ID)
	@touch $@

$(VENV)/.tools-$(PY_TOOLS_ID):
	[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(PY_TOOLS)
	@touch $@

$(VENV)/.dist-stamp: $(VENV)/.tools-stamp
	$(VPY) -m pip install -q $(DIST_PY_TOOLS)
	@touch $@

# ---- build ---------------------------------------------------------------------------

.PHONY: python-dev python-release
python-dev: $(VENV)/.tools-stamp ## Build the Python package (debug) into .venv (maturin develop)
	cd bindings-python && VIRTUAL_ENV=$(VENV) $(VENV)/bin/maturin develop -q --target-dir $(MATURIN_TARGET)

python-release: $(VENV)/.tools-stamp ## Build the Python package (release) into .venv, for the benchmark
	cd bindings-python && VIRTUAL_ENV=$(VENV) $(VENV)/bin/maturin develop -q --release --target-dir $(MATURIN_TARGET)
	cd tests/bench/pyo3-async-runtimes-echo && VIRTUAL_ENV=$(VENV) $(VENV)/bin/maturin develop -q --release --target-dir $(MATURIN_TARGET)

.PHONY: lib lib-release
lib: ## Build libpolyio (debug) into target/debug
	$(CARGO) build -p polyio

lib-release: ## Build libpolyio (release) into target/release
	$(CARGO) build --release -p polyio

EXAMPLES := echo_server echo_client udp_echo_server udp_echo_client

.PHONY: examples examples-release
examples: lib ## Build the C examples (debug) into build/examples
	@mkdir -p $(BUILD)/examples
	@for e in $(EXAMPLES); do $(CC) $(CFLAGS_STRICT) -O1 examples/c/$$e.c target/debug/libpolyio.a $(RUST_SYS_LIBS) -o $(BUILD)/examples/$$e; done

examples-release: lib-release
	@mkdir -p $(BUILD)/release/examples
	@for e in $(EXAMPLES); do $(CC) $(CFLAGS_STRICT) -O2 examples/c/$$e.c target/release/libpolyio.a $(RUST_SYS_LIBS) -o $(BUILD)/release/examples/$$e; done

.PHONY: header check-header
header: $(CBINDGEN) ## Regenerate include/polyio.h with cbindgen $(CBINDGEN_VERSION)
	$(CBINDGEN) --quiet --config bindings-c/cbindgen.toml --crate polyio --output include/polyio.h bindings-c

check-header: $(CBINDGEN) ## Fail if include/polyio.h differs from a fresh generation
	@mkdir -p $(BUILD)
	@$(CBINDGEN) --quiet --config bindings-c/cbindgen.toml --crate polyio --output $(BUILD)/polyio.h bindings-c
	@diff -u include/polyio.h $(BUILD)/polyio.h || { echo "include/polyio.h is stale: run 'make header' and commit it"; exit 1; }
	@echo "header: include/polyio.h matches cbindgen $(CBINDGEN_VERSION)"

# ---- node ----------------------------------------------------------------------------

NODE_PKG := bindings-node
NODE_DTS_PRIVATE_CTORS := sed -i -E 's/^(export declare class (Connection|Server|UdpSocket) \{)$$/\1\n  private constructor()/'

.PHONY: node-build test-node test-matrix
node-build: ## Build the Node binding (npm ci + napi build --release) in bindings-node/
	@mkdir -p $(BUILD)/node
	@cp $(NODE_PKG)/index.d.ts $(BUILD)/node/index.d.ts.committed
	@cp $(NODE_PKG)/index.js $(BUILD)/node/index.js.committed
	@cd $(NODE_PKG) && { [ node_modules/.package-lock.json -nt package-lock.json ] || $(NPM) ci --no-audit --no-fund --loglevel=error; }
	cd $(NODE_PKG) && CARGO_TARGET_DIR=$(CURDIR)/target npx napi build --platform --release --no-dts-cache
	@# napi-rs cannot declare a private constructor: the native classes get one here, so that
	@# `new Connection()` (which throws at run time) does not compile either.
	@$(NODE_DTS_PRIVATE_CTORS) $(NODE_PKG)/index.d.ts

test-node: node-build $(INJECT_SO) ## Node suite: index.d.ts drift check, tsc --strict on examples/node, node --test
	@diff -u $(BUILD)/node/index.d.ts.committed $(NODE_PKG)/index.d.ts || { echo "bindings-node/index.d.ts is stale: the build regenerated it; review and commit it"; exit 1; }
	@diff -u $(BUILD)/node/index.js.committed $(NODE_PKG)/index.js || { echo "bindings-node/index.js is stale: the build regenerated it; review and commit it"; exit 1; }
	@echo "node: index.d.ts and index.js match a fresh napi build"
	cd $(NODE_PKG) && npx tsc -p ../examples/node/tsconfig.json
	cd $(NODE_PKG) && POLYIO_INJECT_SO=$(INJECT_SO) $(NODE) --test --test-reporter=spec --test-timeout=120000 test/*.test.js

test-matrix: examples node-build python-dev ## Cross-language echo matrix (C, Python, Node): each client against each server, over TCP and a Unix socket
	PATH=$(VENV)/bin:$$PATH MATRIX_REQUIRE_ALL=1 bash tests/matrix.sh

# ---- install -------------------------------------------------------------------------

.PHONY: install
install: lib-release ## Install header, libpolyio.{so,a}, polyio.pc and the CMake package under PREFIX (default /usr/local)
	bash packaging/c.sh $(PREFIX) $(abspath $(PREFIX))
	@echo "installed polyio $(VERSION) under $(PREFIX)"

# ---- dist ----------------------------------------------------------------------------

.PHONY: dist dist-python dist-node dist-c test-dist set-version check-versions
dist: dist-python dist-node dist-c ## Write dist/: the abi3 manylinux wheel and the sdist, the npm tarballs (polyio, polyio-linux-x64-gnu), the C tarball
	@ls -l $(DIST)

dist-python: $(VENV)/.dist-stamp ## The Python wheel (release, abi3, the lowest manylinux tag it meets) and sdist, into dist/
	@mkdir -p $(DIST) && rm -f $(DIST)/polyio-*.whl $(DIST)/polyio-*.tar.gz
	cd bindings-python && VIRTUAL_ENV=$(VENV) $(VENV)/bin/maturin build -q --release --strip --target-dir $(MATURIN_TARGET) -o $(DIST)
	cd bindings-python && $(VENV)/bin/maturin sdist -o $(DIST)

dist-node: node-build ## The npm tarballs, napi-rs's layout: polyio (optionalDependencies) and polyio-linux-x64-gnu (the .node), into dist/
	@mkdir -p $(DIST) && rm -f $(DIST)/polyio-*.tgz
	bash packaging/npm.sh $(BUILD)/dist/npm $(DIST)

dist-c: lib-release ## The C tarball (header, libpolyio.so.X.Y.Z and symlinks, libpolyio.a, .pc files, CMake package), into dist/
	@mkdir -p $(DIST) && rm -f $(DIST)/libpolyio-*.tar.gz && rm -rf $(BUILD)/dist/c
	bash packaging/c.sh $(BUILD)/dist/c/$(C_DIST_NAME)
	tar -C $(BUILD)/dist/c --owner=0 --group=0 -czf $(DIST)/$(C_DIST_NAME).tar.gz $(C_DIST_NAME)

test-dist: deps-test dist ## Install every dist/ artifact with no Rust toolchain on PATH (venv, npm --offline, a C prefix with pkg-config and CMake) and echo through each
	SDIST_TARGET_DIR=$(MATURIN_TARGET) bash tests/dist.sh $(DIST) $(BUILD)/test-dist

set-version: ## Move every part of polyio to version V (make set-version V=X.Y.Z), generated files included
	@[ -n "$(V)" ] || { echo "usage: make set-version V=X.Y.Z"; exit 1; }
	python3 scripts/set_version.py $(V)
	$(CARGO) update --workspace --quiet
	$(MAKE) header node-build
	python3 tests/versions.py

check-versions: ## Fail unless Cargo.toml, the header, the package.json files and the loader name one version
	python3 tests/versions.py

# ---- test ----------------------------------------------------------------------------

$(INJECT_SO): tests/faults/inject.c
	@mkdir -p $(dir $@)
	$(CC) -Wall -Wextra -Werror -O1 -shared -fPIC -o $@ $< -ldl

.PHONY: test test-rust lint check-links test-c test-install test-python test-python-conformance
test: deps-test check-header check-versions check-links lint test-rust test-c test-install test-python test-node test-matrix test-dist test-docs test-exits test-threads test-soak test-fuzz-args ## Run every test suite (what CI runs)
	@echo "make test: all suites passed"

check-links: ## Fail if a link in README.md or docs/*.md names no tracked file of this repository
	python3 tests/check_links.py

lint: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

test-rust: $(INJECT_SO) ## Rust tests (core, C ABI, bench tools)
	POLYIO_INJECT_SO=$(INJECT_SO) $(CARGO) test --workspace

test-c: lib examples ## C tests: plain, AddressSanitizer+UBSan, valgrind; the header in C99 and C++17
	$(CC) -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/polyio.h
	@mkdir -p $(BUILD)/tests
	g++ -std=c++17 -Wall -Wextra -Werror -g -Iinclude tests/c/cxx_smoke.cpp target/debug/libpolyio.a $(RUST_SYS_LIBS) -o $(BUILD)/tests/cxx_smoke
	$(BUILD)/tests/cxx_smoke
	bash tests/c/run.sh plain
	bash tests/c/run.sh asan
	bash tests/c/run.sh valgrind

test-python: deps-test python-dev $(INJECT_SO) ## Python: mypy --strict, stubs vs module (mypy.stubtest), then pytest on asyncio and uvloop
	cd bindings-python && $(VPY) -m mypy --strict python/polyio
	cd bindings-python && $(VPY) -m mypy.stubtest polyio
	cd bindings-python && POLYIO_INJECT_SO=$(INJECT_SO) $(VPY) -m pytest -q tests
	$(VPY) tests/conformance/run.py --short

test-python-conformance: deps-test python-dev ## CPython's own test.test_asyncio (events, streams, server, base_events, sock_lowlevel) on asyncio, uvloop and polyio's loop; fails on an unlisted regression (tests/conformance/expected_failures.txt)
	$(VPY) tests/conformance/run.py

test-install: ## Install into build/prefix and build an echo with only the pkg-config line
	@rm -rf $(BUILD)/prefix $(BUILD)/pc && mkdir -p $(BUILD)/pc
	@$(MAKE) install PREFIX=$(BUILD)/prefix >/dev/null
	@export PKG_CONFIG_PATH=$(BUILD)/prefix/lib/pkgconfig; \
	for e in $(EXAMPLES); do $(CC) -std=c11 -Wall -Wextra -Werror examples/c/$$e.c $$(pkg-config --cflags --libs polyio) -o $(BUILD)/pc/$$e; done
	@bash tests/echo_pair.sh $(BUILD)/pc/echo_server $(BUILD)/pc/echo_client --conns 4 --size 4096 --count 200
	@echo "install: a program built with 'pkg-config --cflags --libs polyio' echoes through polyio"

# ---- docs ----------------------------------------------------------------------------

.PHONY: docs test-docs bench-docs
docs: $(MDBOOK) ## Build the book (docs/ and the references generated from the header, the Python sources, index.d.ts) with mdBook $(MDBOOK_VERSION) into build/docs/
	@rm -rf $(BUILD)/book-src && mkdir -p $(BUILD) && cp -r docs $(BUILD)/book-src
	python3 scripts/docs_reference.py --check $(BUILD)/book-src/reference
	$(MDBOOK) build $(BUILD)/book-src -d $(BUILD)/docs
	@echo "docs: open build/docs/index.html"

test-docs: python-dev node-build lib-release ## Generate the reference pages (each must cover its source) and run every sample in docs/*.md: C against an installed prefix (pkg-config, CMake), Python in .venv, Node
	python3 scripts/docs_reference.py --check $(BUILD)/docs-reference
	@rm -rf $(BUILD)/docs-prefix $(BUILD)/docs-node && mkdir -p $(BUILD)/docs-node/node_modules
	@$(MAKE) install PREFIX=$(BUILD)/docs-prefix >/dev/null
	@ln -s $(CURDIR)/$(NODE_PKG) $(BUILD)/docs-node/node_modules/polyio
	python3 tests/docs_samples.py --prefix $(BUILD)/docs-prefix --python $(VPY) --node-modules $(BUILD)/docs-node/node_modules $(BUILD)/docs-samples

bench-docs: ## Copy the latest make bench / bench-files tables and chart from target/bench/ into docs/bench/
	@mkdir -p docs/bench
	@for f in echo.svg echo.md files.md; do [ -f target/bench/$$f ] && cp target/bench/$$f docs/bench/$$f && echo "docs/bench/$$f"; done; true

# ---- reliability: fuzzing, soak, exits ----------------------------------------------

CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ := $(TOOLS)/bin/cargo-fuzz
FUZZ_SECS ?= 300
FUZZ_TARGETS ?= c_calls parsers
SOAK_SECS ?= 600
SOAK_CONNS ?= 10000
SOAK_SERVERS ?= c,python,node
SOAK_EVENTS ?= 1000000
EXITS_PYTHON ?= 10000
EXITS_NODE ?= 2000

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --root $(TOOLS) --quiet

# Python's argument fuzzer runs under atheris (coverage-guided), in .venv beside the test tools.
FUZZ_PY_TOOLS := atheris==3.0.0

$(VENV)/.fuzz-stamp: $(VENV)/.tools-stamp
	$(VPY) -m pip install -q $(FUZZ_PY_TOOLS)
	@touch $@

.PHONY: fuzz-args test-fuzz-args
fuzz-args: python-dev node-build $(VENV)/.fuzz-stamp ## Fuzz Python's and Node's argument conversion for FUZZ_SECS seconds each (Python under atheris, Node seeded); prints executions and findings
	@mkdir -p target/fuzz-corpus/py_args target/fuzz-artifacts/py_args
	@echo "== fuzzing py_args for $(FUZZ_SECS) s (atheris)"
	$(VPY) tests/fuzz-args/args_py.py --atheris -max_total_time=$(FUZZ_SECS) -timeout=60 -print_final_stats=1 \
	  -artifact_prefix=target/fuzz-artifacts/py_args/ \
	  target/fuzz-corpus/py_args fuzz/corpus/py_args 2>&1 | tee target/fuzz-py_args.log \
	  | grep -aE '^(Done|stat::number_of_executed_units|FINDING|=== Uncaught|.*crash-)' || true
	@echo "== fuzzing node_args for $(FUZZ_SECS) s (seeded, --strict)"
	FUZZ_CHILD_TIMEOUT=$$(( $(FUZZ_SECS) + 600 )) $(NODE) tests/fuzz-args/args_node.js --strict --seed $$RANDOM --runs 0 --secs $(FUZZ_SECS) \
	  > target/fuzz-node_args.log 2>&1 || true
	@grep -aE '^(node_args:|FINDING:)' target/fuzz-node_args.log; grep -acE '^(FINDING|DIVERGENCE) in' target/fuzz-node_args.log | sed 's/^/node_args findings: /'

test-fuzz-args: python-dev node-build ## Short seeded argument fuzzing of Python and Node (the committed corpus plus random inputs): no crash, no hang, no leaked fd, Python's exceptions as asyncio's
	$(VPY) tests/fuzz-args/args_py.py --seed 1 --runs 150
	$(NODE) tests/fuzz-args/args_node.js --strict --seed 1 --runs 100

.PHONY: fuzz soak test-exits
fuzz: $(CARGO_FUZZ) fuzz-args ## Fuzz the C ABI under libFuzzer + AddressSanitizer, FUZZ_SECS seconds per target (needs a nightly toolchain); new inputs go to target/fuzz-corpus/
	@rustup toolchain list | grep -q '^nightly' || { echo "make fuzz needs a nightly toolchain: rustup toolchain install nightly"; exit 1; }
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz-corpus/$$t; \
	  echo "== fuzzing $$t for $(FUZZ_SECS) s"; \
	  PATH=$(TOOLS)/bin:$$PATH $(CARGO) +nightly fuzz run $$t target/fuzz-corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECS) -timeout=20 -print_final_stats=1 2>&1 | tee target/fuzz-$$t.log \
	    | grep -E '^(Done|stat::|==[0-9]+==|thread .* panicked|.*fuzz/artifacts/)' ; \
	done

soak: examples-release node-build python-release $(INJECT_SO) ## Soak: exactly-once at SOAK_EVENTS events, the fault tests in release with a byte a second, exits (EXITS_PYTHON / EXITS_NODE processes), SOAK_CONNS echo connections for SOAK_SECS through SOAK_SERVERS, slow readers (64 MiB); writes target/soak/
	POLYIO_EVENTS=$(SOAK_EVENTS) $(CARGO) test --release -p polyio-core --test exactly_once -- --nocapture
	POLYIO_TRICKLE_MS=1000 POLYIO_INJECT_SO=$(INJECT_SO) $(CARGO) test --release -p polyio-core --test faults -- --nocapture
	python3 tests/exits/exits.py --python $(EXITS_PYTHON) --node $(EXITS_NODE) --json target/soak/exits.json
	$(CARGO) build --release -p polyio-loadgen
	python3 tests/soak/soak.py --conns $(SOAK_CONNS) --secs $(SOAK_SECS) --servers $(SOAK_SERVERS) --out target/soak
	python3 tests/bench/slow_reader.py --out target/soak

test-exits: python-dev node-build ## Short exits test: 24 Python and 24 Node processes exit with polyio work pending, no crash, no hang
	python3 tests/exits/exits.py --python 24 --node 24

.PHONY: test-soak
test-soak: examples python-dev node-build ## Short soak: 200 connections x 3 s through the C, Python and Node echo servers (debug builds), bytes verified, no fd leaked
	$(CARGO) build -p polyio-loadgen --quiet
	SOAK_C_SERVER=$(BUILD)/examples/echo_server SOAK_LOADGEN=target/debug/polyio-loadgen \
	  python3 tests/soak/soak.py --conns 200 --secs 3 --out target/soak-short

.PHONY: test-threads
test-threads: examples python-dev node-build ## The one-runtime-per-thread echo servers (C --threads, Python loops, Node workers) at 3 threads, every byte verified
	SERVER_ARGS="--threads 3" bash tests/echo_pair.sh $(BUILD)/examples/echo_server $(BUILD)/examples/echo_client --conns 12 --size 4096 --count 100
	SERVER_ARGS="examples/python/echo_server_threads.py --threads 3" bash tests/echo_pair.sh $(VPY) $(BUILD)/examples/echo_client --conns 12 --size 4096 --count 100
	SERVER_ARGS="examples/node/echo_server_workers.js --threads 3" bash tests/echo_pair.sh $(NODE) $(BUILD)/examples/echo_client --conns 12 --size 4096 --count 100

# ---- demo and bench ------------------------------------------------------------------

.PHONY: demo
demo: examples-release node-build python-dev ## Build and run polyio servers and clients talking
	@echo "== C echo server (blocking in polyio_reap) <- C echo client (its own poll() loop)"
	@bash tests/echo_pair.sh $(BUILD)/release/examples/echo_server $(BUILD)/release/examples/echo_client --show --conns 1 --size 32 --count 3
	@bash tests/echo_pair.sh $(BUILD)/release/examples/echo_server $(BUILD)/release/examples/echo_client --conns 10 --size 1024 --count 20000
	@echo "== C echo server driven by a foreign poll() loop <- C echo client"
	@SERVER_ARGS=--poll bash tests/echo_pair.sh $(BUILD)/release/examples/echo_server $(BUILD)/release/examples/echo_client --conns 10 --size 1024 --count 20000
	@$(MAKE) python-dev
	@echo "== Python client (polyio.open_connection) -> C echo server"
	@SERVER_ARGS= bash tests/echo_pair.sh $(BUILD)/release/examples/echo_server $(VPY) examples/python/echo_client.py --show --conns 1 --size 32 --count 3
	@bash tests/echo_pair.sh $(BUILD)/release/examples/echo_server $(VPY) examples/python/echo_client.py --conns 10 --size 1024 --count 2000
	@echo "== C echo client -> Python server (polyio.start_server)"
	@SERVER_ARGS=examples/python/echo_server.py bash tests/echo_pair.sh $(VPY) $(BUILD)/release/examples/echo_client --conns 10 --size 1024 --count 2000

	@echo "== Node echo server (polyio on Node's own libuv loop) <- Node echo client"
	@bash tests/echo_pair.sh examples/node/echo_server.js examples/node/echo_client.js --show --conns 1 --size 32 --count 3
	@bash tests/echo_pair.sh examples/node/echo_server.js examples/node/echo_client.js --conns 10 --size 1024 --count 2000
	@echo "== Cross-language matrix"
	@PATH=$(VENV)/bin:$$PATH MATRIX_REQUIRE_ALL=1 bash tests/matrix.sh --release


.PHONY: bench bench-build
bench-build: deps-bench examples-release python-release node-build
	$(CARGO) build --release -p polyio-loadgen -p polyio-bench-tokio-echo -p polyio-bench-uring-echo
	@mkdir -p $(BUILD)/bench
	$(CC) -O2 -Wall -Wextra -Werror tests/bench/libuv_echo.c -luv -o $(BUILD)/bench/libuv_echo

bench: bench-build ## Echo benchmark side by side over TCP, Unix sockets and UDP, 3 rounds of 3 s per cell (BENCH_SERVERS, BENCH_TRANSPORTS, BENCH_SIZES, BENCH_REPEATS, BENCH_SECS narrow it), then memory per idle connection, Node's http and Python's aiohttp and redis-py; writes target/bench/
	BENCH_REPEATS=$${BENCH_REPEATS:-3} BENCH_SECS=$${BENCH_SECS:-3} python3 tests/bench/run.py
	python3 tests/bench/idle.py
	@$(MAKE) bench-node-http
	BENCH_REPEATS=$${BENCH_REPEATS:-3} $(VPY) tests/bench/py_apps.py
	$(CARGO) bench -p polyio-core --bench roundtrip -- --quick

.PHONY: bench-idle
bench-idle: bench-build ## Server RSS per idle connection (4,000 connections, one round trip each, then idle), polyio beside uvloop, net and libuv (BENCH_IDLE_CONNS, BENCH_IDLE_REPEATS); writes target/bench/idle.{json,md}
	python3 tests/bench/idle.py $(SERVERS)

.PHONY: bench-slow-reader
bench-slow-reader: python-release node-build ## Slow readers and memory: a server writes SLOW_READER_MIB (64) MiB without waiting, then awaiting drain, to a client that reads late; writer RSS beside the bytes handed over for polyio (Python streams and protocol, Node), asyncio, uvloop and net; writes target/bench/slow_reader.{json,md,svg}
	python3 tests/bench/slow_reader.py

.PHONY: bench-node-http
bench-node-http: deps-bench node-build ## Node's http "hello" server fed by net and by polyio.serve(), loaded by wrk (keep-alive), 3 rounds side by side with server CPU per request (BENCH_HTTP_SECS, BENCH_HTTP_CONNS, BENCH_HTTP_REPEATS narrow it); writes target/bench/http.{json,md}
	NODE=$(NODE) python3 tests/bench/http_run.py

.PHONY: bench-py-apps
bench-py-apps: deps-bench python-release ## aiohttp "hello" under wrk and redis-py GET/SET (10 tasks) against redis-server, on polyio's loop, uvloop and asyncio (BENCH_PY_SECS, BENCH_PY_CONNS, BENCH_REPEATS, BENCH_PY_LOOPS, BENCH_PY_WORKLOADS narrow it); writes target/bench/py_apps.md
	$(VPY) tests/bench/py_apps.py

.PHONY: bench-threads
bench-threads: examples-release python-release node-build ## Many cores: the C, Python and Node echo servers with one runtime per thread at 1 and 2 threads (BENCH_SECS, BENCH_THREADS, BENCH_CONNS narrow it); writes target/bench/threads.*
	$(CARGO) build --release -p polyio-loadgen
	python3 tests/bench/threads.py

.PHONY: bench-files bench-files-build
# The file benchmark's Python peers, in .venv beside the release polyio (not make test's tools).
BENCH_FILES_PY := aiofiles==25.* anyio==4.*

$(VENV)/.bench-files-stamp: $(VENV)/.tools-stamp
	$(VPY) -m pip install -q $(BENCH_FILES_PY)
	@touch $@

bench-files-build: deps-bench lib-release python-release node-build $(VENV)/.bench-files-stamp
	$(CARGO) build --release -p polyio-bench-files
	@mkdir -p $(BUILD)/bench
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -Iinclude tests/bench/files/files_c.c target/release/libpolyio.a -luv $(RUST_SYS_LIBS) -o $(BUILD)/bench/files_c

bench-files: bench-files-build ## File benchmark: polyio (io_uring and blocking pool) from C, Python and Node beside libuv, tokio::fs, aiofiles, anyio, fs/promises and blocking calls, every byte verified (BENCH_FILES_SCALE=0.01 for a smoke run; BENCH_FILES_ROWS, BENCH_FILES_WORKLOADS, BENCH_FILES_REPEATS narrow it); writes target/bench/files.json and files.md
	NODE=$(NODE) python3 tests/bench/files/run.py

.PHONY: bench-instructions
bench-instructions: deps-test bench-build ## User-space instructions per request under callgrind at 1 and 10 connections (steady where req/s is not); SYSCALLS=1: syscalls per request under strace -c (SYSCALLS=perf: counted by perf, which does not slow the server): make bench-instructions [SERVERS="polyio-c libuv"] [SYSCALLS=1|perf]
	python3 tests/bench/instructions.py $(if $(SYSCALLS),--syscalls$(if $(filter perf,$(SYSCALLS)),=perf)) $(SERVERS)

.PHONY: clean
clean: ## Remove build outputs (keeps .tools)
	$(CARGO) clean
	rm -rf $(BUILD) $(DIST)
