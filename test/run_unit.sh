#!/bin/sh
# Runs every engine unit test and fuzz-corpus replay; prints one total line.
BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 2
pass=0; fail=0

# run_test LABEL CMD...: runs one test binary, adds its "N passed, M failed"
# line to the totals (a missing line or a non-zero exit counts as a failure)
run_test() {
	label=$1; shift
	out=$("$@" 2>&1); rc=$?
	line=$(printf '%s\n' "$out" | tail -n 1)
	p=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p')
	f=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p')
	if [ -z "$p" ]; then p=0; f=1; fi
	if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
	[ "$f" != 0 ] && printf '%s\n' "$out" | tail -n 30
	printf '%s%s\n' "$line" "$label"
	pass=$((pass + p)); fail=$((fail + f))
}

for t in "$BUILD"/test/test_*; do
	[ -x "$t" ] || continue
	run_test "" "$t"
done
# the forward pass again with each narrower kernel set (the AVX-512 set runs
# the linear layers on packed weights, the others through BLAS): every path
# keeps its parity with transformers
for k in avx2 generic; do
	run_test " (FINBERT_CPU_KERNEL=$k)" env FINBERT_CPU_KERNEL=$k "$BUILD/test/test_forward"
done
# finbert-cli inspect: a TensorFlow checkpoint that loads (exit 0, its
# optimizer slots counted), a pickle calling os.system (exit 2, the reason)
inspect_check() {
	label=$1 want_rc=$2 pattern=$3 dir=$4
	out=$("$BUILD/finbert-cli" inspect "$dir" 2>&1); rc=$?
	if [ "$rc" = "$want_rc" ] && printf '%s\n' "$out" | grep -q "$pattern"; then
		pass=$((pass + 1)); echo "cli inspect $label: ok"
	else
		fail=$((fail + 1)); echo "cli inspect $label: FAILED (exit $rc)"; printf '%s\n' "$out" | tail -n 5
	fi
}
if [ -x "$BUILD/finbert-cli" ]; then
	inspect_check tf_bert 0 "93 optimizer slots and counters skipped" test/fixtures/formats/tf_bert
	inspect_check bin_evil 2 'os.system" is not allowed' test/fixtures/formats/bin_evil
	inspect_check both_differ 0 "notice: .*pytorch_model.bin is also present and differs" test/fixtures/formats/both_differ
fi
# A text's results do not depend on its batch (README "Determinism"):
# finbert-cli classify one line per engine call, then four and seven, byte
# for byte, with each kernel set that has packed fp32 kernels, under
# OpenBLAS's Haswell kernel, which computes the last rows of a call with
# other kernels than the rest.  The generic set runs every layer through
# that kernel: its outputs differ between batchings (the negative control;
# a note only, as another OpenBLAS build may compute every row alike).
batch_outputs() {
	for b in 1 4 7; do
		OPENBLAS_CORETYPE=Haswell FINBERT_CPU_KERNEL=$1 "$BUILD/finbert-cli" classify \
			test/fixtures/models/cls --batch $b --threads 1 <test/regress/parity.txt | cksum
	done | sort -u | wc -l
}
if [ -x "$BUILD/finbert-cli" ]; then
	for set in avx2 avx512; do
		case $set in
		avx2) flags="avx2 fma" ;;
		avx512) flags="avx512f avx512bw avx512dq avx512vl avx512_vnni" ;;
		esac
		missing=""
		for f in $flags; do
			grep -qw "$f" /proc/cpuinfo 2>/dev/null || missing="$missing $f"
		done
		if [ -n "$missing" ]; then
			echo "batch invariance ($set): SKIPPED, this CPU lacks$missing"
		elif [ "$(batch_outputs $set)" = 1 ]; then
			pass=$((pass + 1)); echo "batch invariance ($set): ok, the same bytes alone and in batches of 4 and 7"
		else
			fail=$((fail + 1)); echo "batch invariance ($set): FAILED, a text's outputs depend on its batch"
		fi
	done
	if [ "$(batch_outputs generic)" = 1 ]; then
		echo "batch invariance negative control (generic, OpenBLAS Haswell): note: no difference with this OpenBLAS"
	else
		pass=$((pass + 1)); echo "batch invariance negative control (generic, OpenBLAS Haswell): differs, as it must"
	fi
fi
# negative control: the CUDA kernel test against a LayerNorm kernel built
# wrong must fail (make builds it with FB_CUDA_BREAK_LAYERNORM)
neg="$BUILD/cuda-neg/test_cuda_kernels"
if [ -x "$neg" ]; then
	out=$("$neg" 2>&1); rc=$?
	if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -q 'FAIL.*bias_residual_layernorm'; then
		pass=$((pass + 1)); echo "cuda_kernels negative control (broken LayerNorm kernel): fails as it must"
	else
		fail=$((fail + 1)); echo "cuda_kernels negative control: the broken kernel PASSED the test"
	fi
fi
for r in "$BUILD"/fuzz/*_replay; do
	[ -x "$r" ] || continue
	n=$(basename "$r" _replay)
	if "$r" "test/fuzz/corpus/$n" >/dev/null 2>"$BUILD/fuzz/$n.log"; then
		pass=$((pass + 1)); echo "$n corpus replay: ok"
	else
		fail=$((fail + 1)); echo "$n corpus replay: FAILED"; tail -n 20 "$BUILD/fuzz/$n.log"
	fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
