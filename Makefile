# finbert — build of the engine library, the command-line tool, the tests
# and the PostgreSQL extension (PGXS, at the end of this file).
#
#   make            engine library, CLI, unit tests and finbert.so
#   make install    finbert.so and the SQL files into the PostgreSQL tree
#   make stress-test  the unit tests of the plain and ASan builds 20 times
#                   (STRESS_ROUNDS=N): catches a flaky test before CI does
#   make test       unit tests + the glue's layering (test/pg/layers.sh) +
#                   pg_regress suite on throw-away clusters
#                   (inline and worker passes) + TAP tests of the
#                   background worker, from a private PostgreSQL
#                   installation in a scratch directory (as root: the
#                   clusters run as postgres; nothing is installed into
#                   the system)
#   make demo       a scratch cluster with the models and sample news, and
#                   the headline queries (make demo-stop stops it)

# `make test` and `make demo` first install missing Debian packages (as
# root), before anything below needs pkg-config or pg_config.
ifneq ($(filter test demo,$(MAKECMDGOALS)),)
_deps := $(shell sh scripts/deps.sh >&2)
endif

BUILD      ?= build
CC         ?= gcc
PKG_CONFIG ?= pkg-config

ENGINE_PKGS   := icu-uc icu-i18n json-c openblas
ENGINE_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(ENGINE_PKGS))
ENGINE_LIBS   := $(shell $(PKG_CONFIG) --libs $(ENGINE_PKGS)) -lm -lpthread

WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wmissing-prototypes
OPT     ?= -O2 -g
FB_CFLAGS := -std=gnu11 $(OPT) $(WARN) -fPIC -fvisibility=hidden -Isrc/engine $(ENGINE_CFLAGS) $(SAN)

ENGINE_SRCS := $(wildcard src/engine/*.c src/engine/*/*.c)
ENGINE_OBJS := $(patsubst src/engine/%.c,$(BUILD)/engine/%.o,$(ENGINE_SRCS))
ENGINE_LIB  := $(BUILD)/libfinbert_engine.a
CLI         := $(BUILD)/finbert-cli
TEST_SRCS   := $(wildcard test/test_*.c)
TEST_BINS   := $(patsubst test/%.c,$(BUILD)/test/%,$(TEST_SRCS))
FUZZ_SRCS   := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%_replay,$(FUZZ_SRCS))

.PHONY: all engine cli unit-tests test check-unit asan-test stress-test fuzz fuzz-replay clean-engine

all: engine cli unit-tests

engine: $(ENGINE_LIB)
cli: $(CLI)
unit-tests: $(TEST_BINS) $(FUZZ_REPLAY)

ENGINE_HDRS := $(wildcard src/engine/*.h src/engine/*/*.h)

$(BUILD)/engine/%.o: src/engine/%.c $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(FB_CFLAGS) -c -o $@ $<

$(ENGINE_LIB): $(ENGINE_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

BENCH := $(BUILD)/bench_engine
bench-engine: $(BENCH)
$(BENCH): bench/bench_engine.c bench/bench_util.h $(ENGINE_LIB)
	$(CC) $(FB_CFLAGS) -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

# one attention head: fp32 (OpenBLAS) against the bfloat16 kernel
bench-attention: $(BUILD)/bench_attention
$(BUILD)/bench_attention: bench/bench_attention.c bench/bench_util.h $(ENGINE_LIB)
	$(CC) $(FB_CFLAGS) -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

# the CPU's fp32 / int8 / bfloat16 multiply-add peaks and the BERT-base ceilings
bench-peak: $(BUILD)/bench_peak
$(BUILD)/bench_peak: bench/bench_peak.c bench/bench_util.h
	@mkdir -p $(dir $@)
	$(CC) $(FB_CFLAGS) -o $@ $< -lpthread

# finbert's int8 GEMM against oneDNN's (needs libdnnl-dev; not part of all)
bench-onednn: $(BUILD)/bench_q8_onednn
$(BUILD)/bench_q8_onednn: bench/bench_q8_onednn.c bench/bench_util.h $(ENGINE_LIB)
	$(CC) $(FB_CFLAGS) -o $@ $< $(ENGINE_LIB) -ldnnl $(ENGINE_LIBS)

$(CLI): src/cli/finbert_cli.c $(ENGINE_LIB)
	$(CC) $(FB_CFLAGS) -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

$(BUILD)/test/%: test/%.c test/fb_test.h $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(FB_CFLAGS) -Itest -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

# Fuzz harnesses linked with a replay driver (gcc), so corpora are replayed
# in every test run; `make fuzz` builds the libFuzzer versions with clang.
$(BUILD)/fuzz/%_replay: test/fuzz/%.c test/fuzz/replay_main.c test/fb_test.h $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(FB_CFLAGS) -Itest -o $@ $< test/fuzz/replay_main.c $(ENGINE_LIB) $(ENGINE_LIBS)

FUZZ_BUILD := build-fuzz
fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang SAN="-fsanitize=fuzzer-no-link,address,undefined" engine
	@mkdir -p $(FUZZ_BUILD)/fuzz
	for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	  clang $(FB_CFLAGS) -fsanitize=fuzzer,address,undefined -Itest -o $(FUZZ_BUILD)/fuzz/$$n $$f \
	    $(FUZZ_BUILD)/libfinbert_engine.a $(ENGINE_LIBS) || exit 1; done

check-unit: $(TEST_BINS) $(FUZZ_REPLAY) $(CLI)
	@sh test/run_unit.sh $(BUILD)

ASAN_MAKE = $(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
            SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"

asan-test:
	$(ASAN_MAKE) check-unit

# the unit tests of the plain and the ASan build, STRESS_ROUNDS times each
STRESS_ROUNDS ?= 20
stress-test: $(TEST_BINS) $(FUZZ_REPLAY) $(CLI)
	$(ASAN_MAKE) unit-tests cli
	@sh test/stress.sh $(STRESS_ROUNDS) $(BUILD) build-asan

test: check-unit check-layers check-pg

clean-engine:
	rm -rf $(BUILD) build-asan $(FUZZ_BUILD)

clean: clean-engine

# ---------------------------------------------------------------------------
# PostgreSQL extension (PGXS)
# ---------------------------------------------------------------------------
PG_CONFIG ?= pg_config
PGXS      := $(shell $(PG_CONFIG) --pgxs)

MODULE_big  = finbert
PG_SRCS    := $(wildcard src/pg/*.c)
OBJS        = $(PG_SRCS:.c=.o)
EXTENSION   = finbert
DATA        = sql/finbert--0.1.0.sql
PG_CPPFLAGS = -Isrc/engine -Isrc/pg
PG_WERROR  ?= -Werror
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-clobbered \
              -Wmissing-prototypes $(PG_WERROR)
SHLIB_LINK += $(ENGINE_LIB) $(ENGINE_LIBS)

# Regression suite: sql/<name>.sql + expected/<name>.out, run in this order
# on a temporary cluster that preloads finbert (--temp-instance), whose
# finbert.model_dir holds copies of the fixture models plus corrupt and
# escaping variants made by test/regress/prepare.sh.  The suite runs twice:
# as configured (execution auto: inline in a single session) and with
# finbert.execution = worker, against the same expected output.
REGRESS      = setup classify entities embed tokenize arrays errors security cli_parity stats worker cache memory starter drop

# JIT bitcode of the glue is of no use; do not require clang.
override with_llvm = no

include $(PGXS)

# finbert.so links the engine library (objects built with -fPIC above).
$(shlib): $(ENGINE_LIB)
$(OBJS): $(wildcard src/pg/*.h) src/engine/finbert.h
all: $(ENGINE_LIB)

.PHONY: check-pg check-regress check-tap check-readme check-layers

# The glue's files call only files of lower layers (table in finbert_pg.h):
# checked on the objects, so a call cycle cannot creep back.
check-layers: $(OBJS)
	@sh test/pg/layers.sh src/pg

# The PostgreSQL tests run in a scratch directory with a private
# installation of PostgreSQL + finbert (+ pgvector), as postgres when make
# runs as root: from any clone location, without touching the system's
# PostgreSQL tree (test/pg/check.sh).
PG_CHECK = env REGRESS="$(REGRESS)" PG_CONFIG="$(PG_CONFIG)" MAKE="$(MAKE)" \
           sh test/pg/check.sh "$(CURDIR)" "$(CURDIR)/$(CLI)"

check-pg: all
	$(PG_CHECK) regress worker tap
check-regress: all
	$(PG_CHECK) regress worker
check-tap: all
	$(PG_CHECK) tap
check-readme: all
	$(PG_CHECK) readme

clean: clean-pgvector
clean-pgvector:
	rm -rf $(BUILD)/pgvector $(BUILD)/pgvector.log

# make demo: build, install (as root), start a throw-away cluster under
# build-demo/ on its own port, register the models, load sample news and
# print the headline queries; make demo-stop stops the cluster.
DEMO_DIR  ?= $(CURDIR)/build-demo
DEMO_PORT ?= 54330

.PHONY: demo demo-stop
demo: all
ifeq ($(shell id -u),0)
	$(MAKE) --no-print-directory install >/dev/null
endif
	@sh scripts/demo.sh start "$(CURDIR)" "$(DEMO_DIR)" "$(DEMO_PORT)"

demo-stop:
	@sh scripts/demo.sh stop "$(CURDIR)" "$(DEMO_DIR)" "$(DEMO_PORT)"

clean: demo-clean
demo-clean: demo-stop
	rm -rf "$(DEMO_DIR)"
