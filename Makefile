# finbert — build of the engine library, the command-line tool and the tests.
# The PostgreSQL extension (PGXS) is added on top of the engine library.

BUILD      ?= build
CC         ?= gcc
PKG_CONFIG ?= pkg-config

ENGINE_PKGS   := icu-uc icu-i18n json-c openblas
ENGINE_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(ENGINE_PKGS))
ENGINE_LIBS   := $(shell $(PKG_CONFIG) --libs $(ENGINE_PKGS)) -lm -lpthread

WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wmissing-prototypes
OPT     ?= -O2 -g
FB_CFLAGS := -std=gnu11 $(OPT) $(WARN) -fPIC -fvisibility=hidden -Isrc/engine $(ENGINE_CFLAGS) $(SAN)

ENGINE_SRCS := $(wildcard src/engine/*.c)
ENGINE_OBJS := $(patsubst src/engine/%.c,$(BUILD)/engine/%.o,$(ENGINE_SRCS))
ENGINE_LIB  := $(BUILD)/libfinbert_engine.a
CLI         := $(BUILD)/finbert-cli
TEST_SRCS   := $(wildcard test/test_*.c)
TEST_BINS   := $(patsubst test/%.c,$(BUILD)/test/%,$(TEST_SRCS))
FUZZ_SRCS   := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%_replay,$(FUZZ_SRCS))

.PHONY: all engine cli unit-tests test check-unit asan-test fuzz fuzz-replay clean-engine

all: engine cli unit-tests

engine: $(ENGINE_LIB)
cli: $(CLI)
unit-tests: $(TEST_BINS) $(FUZZ_REPLAY)

$(BUILD)/engine/%.o: src/engine/%.c $(wildcard src/engine/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(FB_CFLAGS) -c -o $@ $<

$(ENGINE_LIB): $(ENGINE_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(CLI): src/cli/finbert_cli.c $(ENGINE_LIB)
	$(CC) $(FB_CFLAGS) -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

$(BUILD)/test/%: test/%.c test/fb_test.h $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(FB_CFLAGS) -Itest -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

# Fuzz harnesses linked with a replay driver (gcc), so corpora are replayed
# in every test run; `make fuzz` builds the libFuzzer versions with clang.
$(BUILD)/fuzz/%_replay: test/fuzz/%.c test/fuzz/replay_main.c $(ENGINE_LIB)
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

asan-test:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" check-unit

test: check-unit

clean-engine:
	rm -rf $(BUILD) build-asan $(FUZZ_BUILD)

clean: clean-engine
