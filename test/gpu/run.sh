#!/bin/bash
# test/gpu/run.sh [OUT_DIR] — the prepared run for a machine with an NVIDIA
# GPU (H100 / H200 class), within 8 minutes:
#
#   1. environment: nvidia-smi, nvcc, PyTorch, CPU
#   2. build with CUDA=1 (the module, its kernel test, the engine, the CLI,
#      bench_engine, make_random_model); a failed build falls back to what
#      build/ already holds
#   3. the kernel test on the device (build/cuda/test_cuda_kernels)
#   4. the parity suite on the device: test_backends with the real module
#      (every fixture and starter model against the CPU fp32 engine)
#   5. bench/gpu.py: finbert against PyTorch CUDA (fp16 SDPA, torch.compile)
#      on BERT-base and the starter geometry, both attention variants, and
#      parity against PyTorch fp32 on the same token ids
#
# Everything is logged to OUT_DIR (default $OUT, else
# bench/results/gpu-<UTC time>): run.log (all output), one log per step,
# summary.txt (each step's status and the figures), gpu.json / gpu.txt.
# A failing step is recorded and the run goes on; the exit code is 1 if any
# step failed.  Each step has a time limit; the limits add up to 465 s.
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
OUT_DIR=${1:-${OUT:-$ROOT/bench/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}}
mkdir -p "$OUT_DIR" || exit 2
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG="$OUT_DIR/run.log"
SUMMARY="$OUT_DIR/summary.txt"
START=$(date +%s)
FAILED=0
: > "$SUMMARY"
exec > >(tee -a "$LOG") 2>&1

note() { echo "[$(( $(date +%s) - START ))s] $*"; }

# step NAME LIMIT_S CMD...: runs CMD with a time limit, output to
# NAME.log (and run.log), status to summary.txt
step() {
	name=$1 limit=$2
	shift 2
	note "== $name (limit ${limit}s): $*"
	t0=$(date +%s)
	timeout --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
	rc=$?
	cat "$OUT_DIR/$name.log"
	if [ $rc -eq 0 ]; then
		status=ok
	elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		status="TIMED OUT after ${limit}s"
		FAILED=1
	else
		status="FAILED (exit $rc)"
		FAILED=1
	fi
	printf '%-10s %-28s %4ss\n' "$name" "$status" "$(( $(date +%s) - t0 ))" >> "$SUMMARY"
	note "$name: $status"
	return $rc
}

JOBS=$(nproc 2>/dev/null || echo 4)
if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
	echo "no GPU          (nvidia-smi lists none: the device steps only say why they cannot run)" >> "$SUMMARY"
	FAILED=1
fi

step env 20 bash -c '
	nvidia-smi || echo "nvidia-smi: not found or failed"
	nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
	command -v nvcc && nvcc --version || echo "nvcc: not found"
	python3 -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))" \
		|| echo "PyTorch: not importable"
	lscpu | head -n 20
	git log -1 --oneline 2>/dev/null || true'

# the engine needs icu, json-c and OpenBLAS (pkg-config); the module nvcc
# and cuBLAS; PostgreSQL is not needed here
step build 170 make -j"$JOBS" CUDA=1 NVCC_THREADS=4 engine cli cuda bench-engine bench-models \
	build/test/test_backends
if [ ! -e build/finbert_cuda.so ]; then
	note "no build/finbert_cuda.so: the device steps cannot run"
fi

step kernels 45 build/cuda/test_cuda_kernels

# only the real device's backends (the harness ones ran in make test)
step parity 60 env FB_TEST_BACKEND="cuda," build/test/test_backends

step bench 170 python3 bench/gpu.py --out "$OUT_DIR" --build build --seconds 4

{
	echo
	echo "total $(( $(date +%s) - START ))s"
	[ -f "$OUT_DIR/gpu.txt" ] && cat "$OUT_DIR/gpu.txt"
	grep -h -E "^(backends|cuda_kernels):|real CUDA|SKIP" "$OUT_DIR/parity.log" "$OUT_DIR/kernels.log" 2>/dev/null
} >> "$SUMMARY"
note "summary ($SUMMARY):"
cat "$SUMMARY"
exit $FAILED
