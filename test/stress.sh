#!/bin/sh
# make stress-test: the engine's unit tests and fuzz replays, ROUNDS times
# over, from each build directory given (the plain and the ASan + UBSan
# build), so a test that fails once in twenty runs is caught before CI
# meets it.  Prints each failing round's output and one summary line.
#
# usage: stress.sh ROUNDS BUILD_DIR...
set -u
rounds=$1
shift
cd "$(dirname "$0")/.." || exit 2
failed=0
total=0
for r in $(seq 1 "$rounds"); do
	for b in "$@"; do
		total=$((total + 1))
		if out=$(sh test/run_unit.sh "$b" 2>&1); then
			printf 'round %d %s: %s\n' "$r" "$b" "$(printf '%s\n' "$out" | tail -n 1)"
		else
			failed=$((failed + 1))
			printf 'round %d %s: FAILED\n%s\n' "$r" "$b" "$out"
		fi
	done
done
echo "stress: $((total - failed)) of $total runs passed ($rounds rounds)"
[ "$failed" -eq 0 ]
