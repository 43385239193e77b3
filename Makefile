# Tessera build. Everything is found through pkg-config; generated code and
# binaries go to build/. `make help` lists the targets.

SHELL := /bin/bash
BUILD := build
PKGS := rdkafka hiredis libpq libprotobuf-c libevent libevent_pthreads jansson libsodium libcurl
SERVICES := ingest ledger tiering campaign notification

CC ?= cc
OPT ?= -O2
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Wno-unused-parameter \
	-Wformat=2 -Wshadow -Wstrict-prototypes -fno-strict-aliasing -pthread
DEPS_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEPS_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_ALL = $(CFLAGS_BASE) $(DEPS_CFLAGS) -I$(BUILD)/gen -Ilibs $(CFLAGS)
LDLIBS_ALL = $(DEPS_LIBS) -lpthread -lm $(LDLIBS)

# Sanitizers: `make test SAN=address,undefined` builds everything with them
# and tests/run.sh fails on any report (see "Sanitizers" in tests/run.sh).
# The objects of another SAN/OPT are thrown away first: build/.flags says
# what build/ was compiled with, so a plain `make test` after a sanitized one
# rebuilds plainly instead of mixing the two.
SAN ?=
ifneq ($(SAN),)
CFLAGS_BASE += -fsanitize=$(SAN) -fno-omit-frame-pointer
endif
BUILD_FLAGS_NOW := san=$(SAN) opt=$(OPT)
ifneq ($(BUILD_FLAGS_NOW),$(shell cat $(BUILD)/.flags 2>/dev/null))
$(shell rm -rf $(BUILD)/obj $(BUILD)/bin $(BUILD)/tests $(BUILD)/*.a; mkdir -p $(BUILD); \
	echo '$(BUILD_FLAGS_NOW)' > $(BUILD)/.flags)
endif

PROTOS := $(shell find proto -name '*.proto' | sort)
PROTO_C := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H := $(PROTO_C:.c=.h)
PROTO_O := $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))

LIB_SRC := $(sort $(wildcard libs/*/*.c))
LIB_O := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
LIBTESSERA := $(BUILD)/libtessera.a

# Each service: main.c plus its other files; the other files also form an
# archive so unit tests can link a service's pure rules without its main().
svc_src = $(sort $(wildcard services/$(1)/*.c))
svc_mig = $(sort $(wildcard services/$(1)/migrations/*.sql))
SVC_BINS := $(patsubst %,$(BUILD)/bin/tessera-%,$(SERVICES))
SVC_ARCHIVES := $(patsubst %,$(BUILD)/svc_%.a,$(SERVICES))

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
SYS_SRC := $(sort $(wildcard tests/integration/test_*.c tests/e2e/test_*.c))
SYS_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(SYS_SRC))
TEST_SUPPORT_SRC := $(sort $(wildcard tests/support/*.c))
TEST_SUPPORT_O := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SUPPORT_SRC))

TOOLS := $(BUILD)/bin/tessera-topics
BENCH_BINS := $(BUILD)/bin/tessera-loadgen $(BUILD)/bin/tessera-bench-bare \
	$(BUILD)/bin/tessera-bench-produce $(BUILD)/bin/tessera-bench-notify

# Prerequisites below use $$* (secondary expansion) to list a service's files.
.SECONDEXPANSION:
# Keep generated sources and objects between runs.
.SECONDARY:

.PHONY: all deps build run stop test unit bench bench-build format format-check format-version clean \
	help fuzz tsan
all: build

help:
	@echo "make run     - install what is missing, build, start the local runtime and all services"
	@echo "make stop    - stop what make run started (ordered)"
	@echo "make test    - build, unit tests, then integration and end-to-end tests on a private runtime"
	@echo "               (SAN=address,undefined: everything built with ASan and UBSan, any report fails)"
	@echo "make bench   - benchmarks against their baselines on a private runtime (~10 min)"
	@echo "make fuzz    - build the libFuzzer targets (clang) and run each for FUZZ_SECONDS (30)"
	@echo "make tsan    - ThreadSanitizer: the ledger with 2 workers through the card, crash and scale-out tests"
	@echo "make format  - clang-format the C sources (make format-check: only check them, as CI does)"
	@echo "make clean   - remove build/ and the test and bench runtimes (stopped) with their data"

deps:
	@./deploy/local/install-deps.sh

build: $(SVC_BINS) $(TOOLS) $(BUILD)/tessera.desc

run: deps
	@$(MAKE) --no-print-directory build
	@./deploy/local/run.sh

stop:
	@./deploy/local/runtime.sh stop

test: deps
	@$(MAKE) --no-print-directory build tests-build
	@TESSERA_SAN=$(SAN) ./tests/run.sh

tests-build: $(UNIT_BINS) $(SYS_BINS)

# ThreadSanitizer: the services built instrumented into build-tsan/ (their
# own objects; build/ stays as it is), run by tests/tsan.sh with the
# ledger on two workers under the ordinary test binaries. Not part of
# `make test` (instrumented services are several times slower). Two
# ledger workers in one test process (test_ledger_card_workers) run
# instrumented too. The binaries carry tests/tsan/thrd_create.c (C11 threads for librdkafka
# through pthreads, which libtsan sees) and are always relinked.
TSAN_BUILD := build-tsan
TSAN_MAKE = $(MAKE) --no-print-directory BUILD=$(TSAN_BUILD) OPT=-O1 CFLAGS="-fsanitize=thread"
TSAN_THRD := $(TSAN_BUILD)/obj/tests/tsan/thrd_create.o
TSAN_LDLIBS := $(TSAN_THRD) -Wl,--export-dynamic-symbol=thrd_create \
	-Wl,--export-dynamic-symbol=thrd_join -Wl,--export-dynamic-symbol=thrd_detach
tsan: deps
	@$(MAKE) --no-print-directory build tests-build
	@$(TSAN_MAKE) $(TSAN_THRD)
	@rm -rf $(TSAN_BUILD)/bin $(TSAN_BUILD)/tests
	@$(TSAN_MAKE) LDLIBS="$(TSAN_LDLIBS)" build $(TSAN_BUILD)/tests/integration/test_ledger_card_workers
	@./tests/tsan.sh $(TSAN_BUILD)

# Benchmarks: bounded in time, never part of `make test`.
bench:
	@./deploy/local/install-deps.sh bench
	@$(MAKE) --no-print-directory build bench-build
	@./bench/run.sh

bench-build: $(BENCH_BINS)

# Formatting: `make format` rewrites and `make format-check` (run by .ci/run
# before the tests) checks the same files with the same clang-format.
# Another major version lays code out differently, so both refuse one that
# is not Debian 12's 14 (CLANG_FORMAT=clang-format-14 picks it by name).
CLANG_FORMAT ?= clang-format
CLANG_FORMAT_MAJOR := 14
FORMAT_SRC = $(shell find libs services tests deploy bench -name '*.[ch]' | sort)
format-version:
	@$(CLANG_FORMAT) --version | grep -q 'version $(CLANG_FORMAT_MAJOR)\.' || { \
	  echo "make format: clang-format $(CLANG_FORMAT_MAJOR) expected, found: $$($(CLANG_FORMAT) --version)" >&2; \
	  exit 1; }

format: format-version
	@$(CLANG_FORMAT) -i $(FORMAT_SRC)

format-check: format-version
	@$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_SRC)

# The test and bench runtimes' data too (PostgreSQL's may live outside the
# checkout); make run's .local is kept: `make stop && rm -rf .local` resets it.
clean:
	@for d in .local-test .local-bench; do \
	  if [ -d $$d ]; then TESSERA_LOCAL_DIR=$(CURDIR)/$$d ./deploy/local/runtime.sh destroy && rm -rf $$d; fi; \
	done
	rm -rf $(BUILD) $(TSAN_BUILD)

# --- protobuf ---------------------------------------------------------------
$(BUILD)/gen/.stamp: $(PROTOS)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Iproto $(PROTOS)
	@touch $@

$(PROTO_C) $(PROTO_H): $(BUILD)/gen/.stamp

$(BUILD)/tessera.desc: $(PROTOS)
	@mkdir -p $(BUILD)
	protoc-c --include_imports --descriptor_set_out=$@ -Iproto $(PROTOS)

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/gen/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-shadow -c $< -o $@

# --- objects ----------------------------------------------------------------
$(BUILD)/obj/%.o: %.c $(BUILD)/gen/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIBTESSERA): $(LIB_O) $(PROTO_O)
	@rm -f $@
	ar rcs $@ $^

# SQL migrations are compiled into each service binary.
$(BUILD)/gen/migrations_%.c: deploy/tools/embed-migrations.sh $$(call svc_mig,$$*)
	@mkdir -p $(dir $@)
	./deploy/tools/embed-migrations.sh $* services/$*/migrations > $@

$(BUILD)/obj/gen/migrations_%.o: $(BUILD)/gen/migrations_%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# (No % inside the expansion: make would replace it with the stem.)
$(BUILD)/svc_%.a: $$(addprefix $(BUILD)/obj/,$$(addsuffix .o,$$(basename $$(filter-out services/$$*/main.c,$$(call svc_src,$$*))))) $(BUILD)/obj/gen/migrations_%.o
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/tessera-%: $(BUILD)/obj/services/%/main.o $(BUILD)/svc_%.a $(LIBTESSERA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bin/tessera-topics: $(BUILD)/obj/deploy/tools/topics.o $(LIBTESSERA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bin/tessera-loadgen: $(BUILD)/obj/bench/loadgen.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bin/tessera-bench-bare: $(BUILD)/obj/bench/bare_server.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bin/tessera-bench-notify: $(BUILD)/obj/bench/notify_produce.o $(LIBTESSERA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bin/tessera-bench-produce: $(BUILD)/obj/bench/produce.o $(LIBTESSERA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# --- tests ------------------------------------------------------------------
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(SVC_ARCHIVES) $(LIBTESSERA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL) $(shell pkg-config --libs cmocka)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_SUPPORT_O) $(SVC_ARCHIVES) $(LIBTESSERA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL) $(shell pkg-config --libs cmocka)

# --- fuzzing (clang + libFuzzer, ASan, UBSan) --------------------------------
# Each tests/fuzz/fuzz_<name>.c is a libFuzzer target; the project's own
# archives are linked in as they are (gcc-built, not instrumented).
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Wno-unused-parameter

fuzz:
	@./deploy/local/install-deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@./tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(SVC_ARCHIVES) $(LIBTESSERA)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(DEPS_CFLAGS) -I$(BUILD)/gen -Ilibs -o $@ $< $(SVC_ARCHIVES) \
		$(LIBTESSERA) $(LDLIBS_ALL)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
