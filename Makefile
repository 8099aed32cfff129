# finbert — build of the engine library, the command-line tool, the tests
# and the PostgreSQL extension (PGXS, at the end of this file).
#
#   make            engine library, CLI, unit tests and finbert.so; the
#                   CUDA backend module when nvcc is found (CUDA=0 skips
#                   it, CUDA=1 requires it) and always its CPU-harness
#                   build, which the unit tests run
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
ENGINE_LIBS   := $(shell $(PKG_CONFIG) --libs $(ENGINE_PKGS)) -lm -lpthread -ldl

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


.PHONY: host
.PHONY: all engine cli unit-tests test check-unit asan-test stress-test fuzz fuzz-replay clean-engine

all: engine cli host unit-tests cuda

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

# random-weight BERT directories of any geometry (test/gpu/run.sh)
bench-models: $(BUILD)/make_random_model
$(BUILD)/make_random_model: bench/make_random_model.c
	@mkdir -p $(dir $@)
	$(CC) $(FB_CFLAGS) -o $@ $< -lm

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

# the engine host process the background worker runs the engine in (no
# PostgreSQL code): installed next to finbert.so
HOST := $(BUILD)/finbert-host
host: $(HOST)
$(HOST): src/host/finbert_host.c src/host/host_proto.h $(ENGINE_LIB)
	$(CC) $(FB_CFLAGS) -Isrc/host -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

$(BUILD)/test/%: test/%.c test/fb_test.h test/fb_golden.h $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(FB_CFLAGS) -Itest -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

# ---------------------------------------------------------------------------
# CUDA backend (kernels/): a module the engine dlopen()s
#
#   $(BUILD)/finbert_cuda.so          nvcc, the GPU module (fat binary:
#                                     sm_80 sm_86 sm_89 sm_90 + PTX)
#   $(BUILD)/finbert_cuda_harness.so  g++, the same sources against the CPU
#                                     execution harness (kernels/harness/):
#                                     what `make test` runs
#   $(BUILD)/test/test_cuda_kernels   each kernel against a plain-C
#                                     reference, under the harness
#   $(BUILD)/cuda/test_cuda_kernels   the same test built by nvcc, for a
#                                     machine with a GPU (test/gpu/run.sh)
# ---------------------------------------------------------------------------
CUDA ?= auto
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
ifeq ($(CUDA),auto)
CUDA_BUILD := $(if $(NVCC),1,0)
else ifeq ($(CUDA),1)
CUDA_BUILD := 1
ifeq ($(NVCC),)
$(error CUDA=1 but nvcc was not found (set NVCC=/path/to/nvcc))
endif
else
CUDA_BUILD := 0
endif

CUDA_SRCS    := $(wildcard kernels/*.cu)
CUDA_HDRS    := $(wildcard kernels/*.cuh kernels/harness/*.h) src/engine/fb_backend.h src/engine/finbert.h
CUDA_ARCHS   ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
                -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
                -gencode arch=compute_90,code=compute_90
# -Werror for host code (through the host compiler) and device code;
# NVCC_THREADS compiles a file's architectures in parallel
NVCC_THREADS ?= 1
NVCC_FLAGS   ?= -std=c++17 -O3 $(CUDA_ARCHS) --threads $(NVCC_THREADS) --Werror all-warnings \
                -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror,-Wno-unused-parameter
CUDA_OBJS    := $(patsubst kernels/%.cu,$(BUILD)/cuda/%.o,$(CUDA_SRCS))
CUDA_MODULE  := $(BUILD)/finbert_cuda.so
CUDA_TEST    := $(BUILD)/cuda/test_cuda_kernels

HARNESS_CXXFLAGS := -std=c++17 $(OPT) -Wall -Wextra -Werror -Wno-unused-parameter -fPIC \
                    -fvisibility=hidden -Isrc/engine -Ikernels $(ENGINE_CFLAGS) $(SAN)
HARNESS_OBJS   := $(patsubst kernels/%.cu,$(BUILD)/cuda-harness/%.o,$(CUDA_SRCS)) \
                  $(BUILD)/cuda-harness/harness.o
HARNESS_MODULE := $(BUILD)/finbert_cuda_harness.so
HARNESS_LIBS   := $(shell $(PKG_CONFIG) --libs openblas) -lm -lpthread
KERNEL_OBJS    = $(filter-out %/backend.o %/harness.o,$(1))

.PHONY: cuda cuda-module cuda-harness
cuda: cuda-harness $(if $(filter 1,$(CUDA_BUILD)),cuda-module)
cuda-module: $(CUDA_MODULE) $(CUDA_TEST)
cuda-harness: $(HARNESS_MODULE) $(BUILD)/test/test_cuda_kernels $(BUILD)/cuda-neg/test_cuda_kernels

$(BUILD)/cuda/%.o: kernels/%.cu $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -Isrc/engine -Ikernels -c -o $@ $<

# the CUDA runtime linked statically: the module needs libcuda (the
# driver) and cuBLAS(Lt) at run time, nothing else
$(CUDA_MODULE): $(CUDA_OBJS)
	$(NVCC) -shared $(CUDA_ARCHS) -o $@ $^ -lcublasLt -lcublas

$(CUDA_TEST): test/cuda/test_cuda_kernels.cu $(call KERNEL_OBJS,$(CUDA_OBJS)) test/fb_test.h $(CUDA_HDRS)
	$(NVCC) $(NVCC_FLAGS) -Isrc/engine -Ikernels -Itest -o $@ $< \
		$(call KERNEL_OBJS,$(CUDA_OBJS)) -lcublasLt -lcublas

$(BUILD)/cuda-harness/%.o: kernels/%.cu $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(HARNESS_CXXFLAGS) -x c++ -c -o $@ $<

$(BUILD)/cuda-harness/harness.o: kernels/harness/harness.cc $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(HARNESS_CXXFLAGS) -c -o $@ $<

$(HARNESS_MODULE): $(HARNESS_OBJS)
	$(CXX) -shared $(SAN) -o $@ $^ $(HARNESS_LIBS)

$(BUILD)/test/test_cuda_kernels: test/cuda/test_cuda_kernels.cu $(call KERNEL_OBJS,$(HARNESS_OBJS)) \
		$(BUILD)/cuda-harness/harness.o test/fb_test.h $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(HARNESS_CXXFLAGS) -Itest -x c++ -o $@ $< -x none \
		$(call KERNEL_OBJS,$(HARNESS_OBJS)) $(BUILD)/cuda-harness/harness.o $(HARNESS_LIBS)

# negative control: the kernel test against a LayerNorm kernel built wrong
# (FB_CUDA_BREAK_LAYERNORM); test/run_unit.sh expects it to fail
$(BUILD)/cuda-neg/norm.o: kernels/norm.cu $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(HARNESS_CXXFLAGS) -DFB_CUDA_BREAK_LAYERNORM -x c++ -c -o $@ $<

$(BUILD)/cuda-neg/test_cuda_kernels: test/cuda/test_cuda_kernels.cu $(BUILD)/cuda-neg/norm.o \
		$(call KERNEL_OBJS,$(HARNESS_OBJS)) $(BUILD)/cuda-harness/harness.o test/fb_test.h $(CUDA_HDRS)
	$(CXX) $(HARNESS_CXXFLAGS) -Itest -DFB_TEST_QUICK -x c++ -o $@ $< -x none $(BUILD)/cuda-neg/norm.o \
		$(filter-out %/norm.o,$(call KERNEL_OBJS,$(HARNESS_OBJS))) $(BUILD)/cuda-harness/harness.o \
		$(HARNESS_LIBS)

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

check-unit: $(TEST_BINS) $(FUZZ_REPLAY) $(CLI) cuda-harness
	@sh test/run_unit.sh $(BUILD)

ASAN_MAKE = $(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
            SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"

asan-test:
	$(ASAN_MAKE) check-unit

# the unit tests of the plain and the ASan build, STRESS_ROUNDS times each
STRESS_ROUNDS ?= 20
stress-test: $(TEST_BINS) $(FUZZ_REPLAY) $(CLI) cuda-harness
	$(ASAN_MAKE) unit-tests cli cuda-harness
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
PG_CPPFLAGS = -Isrc/engine -Isrc/pg -Isrc/host
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
REGRESS      = setup classify entities embed tokenize arrays errors security cli_parity stats worker cache memory starter formats load_models scaleout batching drop

# JIT bitcode of the glue is of no use; do not require clang.
override with_llvm = no

include $(PGXS)

# finbert.so links the engine library (objects built with -fPIC above).
$(shlib): $(ENGINE_LIB)
$(OBJS): $(wildcard src/pg/*.h) src/engine/finbert.h src/host/host_proto.h
all: $(ENGINE_LIB) $(HOST)

.PHONY: check-pg check-regress check-tap check-readme check-layers valgrind-check

# The glue's files call only files of lower layers (table in finbert_pg.h):
# checked on the objects, so a call cycle cannot creep back.
check-layers: $(OBJS)
	@sh test/pg/layers.sh src/pg

# The PostgreSQL tests run in a scratch directory with a private
# installation of PostgreSQL + finbert (+ pgvector), as postgres when make
# runs as root: from any clone location, without touching the system's
# PostgreSQL tree (test/pg/check.sh).
PG_REGRESS_TESTS = $(REGRESS)
PG_CHECK = env REGRESS="$(PG_REGRESS_TESTS)" PG_CONFIG="$(PG_CONFIG)" MAKE="$(MAKE)" \
           sh test/pg/check.sh "$(CURDIR)" "$(CURDIR)/$(CLI)"

check-pg: all
	$(PG_CHECK) regress worker tap readme
check-regress: all
	$(PG_CHECK) regress worker
check-tap: all
	$(PG_CHECK) tap
check-readme: all
	$(PG_CHECK) readme

# The pg_regress suite, inline and worker, with every server process under
# valgrind memcheck (test/pg/valgrind.sh); fails on an error in finbert's
# code or a fatal signal (test/pg/valgrind-report.sh).  Not part of `make
# test`: it takes about 40 minutes on two cores.  The memory
# test is left out: it reads the backend's resident memory, which under
# memcheck holds the queue of freed blocks kept back to catch use after free.
valgrind-check: PG_REGRESS_TESTS = $(filter-out memory,$(REGRESS))
valgrind-check: all
	@command -v valgrind >/dev/null || \
	  { echo "valgrind-check: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
	@logs=$$(mktemp -d "$${TMPDIR:-/tmp}/finbert-valgrind.XXXXXX") && chmod 755 "$$logs" && \
	  rc=0 && FINBERT_VALGRIND="$$logs" $(PG_CHECK) regress worker || rc=$$?; \
	  sh test/pg/valgrind-report.sh "$(CURDIR)" "$$logs" || rc=1; \
	  if [ $$rc = 0 ]; then rm -rf "$$logs"; else echo "valgrind logs kept: $$logs"; exit 1; fi

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

# the engine host program and the CUDA module go next to finbert.so, where
# the worker looks for them (finbert.cuda_module's default)
install: install-host install-cuda
.PHONY: install-host install-cuda
install-host: $(HOST)
	$(INSTALL_PROGRAM) $(HOST) '$(DESTDIR)$(pkglibdir)/'
install-cuda:
	@if [ -f $(CUDA_MODULE) ]; then \
		echo "$(INSTALL_SHLIB) $(CUDA_MODULE) '$(DESTDIR)$(pkglibdir)/'"; \
		$(INSTALL_SHLIB) $(CUDA_MODULE) '$(DESTDIR)$(pkglibdir)/'; fi
