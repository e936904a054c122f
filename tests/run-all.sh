#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: installs what is missing, builds larder twice
# (a normal build and an AddressSanitizer + UndefinedBehaviorSanitizer build) and runs every unit and
# integration test through ctest in both, then runs each libFuzzer target for LARDER_FUZZ_SECONDS
# (default 60) in a clang build. Ends with one line: "total: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh --test || exit 1

jobs=${LARDER_JOBS:-2}
passed=0
failed=0
status=0

run_suite() {
    local dir=$1
    shift
    cmake -B "$dir" "$@" >/dev/null || return 1
    cmake --build "$dir" -j"$jobs" || return 1
    local log="$dir/ctest.log"
    (cd "$dir" && ctest -j"$jobs" --output-on-failure --timeout 600 ${CTEST_ARGS:-}) 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    # ctest's summary: "100% tests passed, 0 tests failed out of 42"
    local line total nfail
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [[ -n "$line" ]]; then
        total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
        nfail=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
        passed=$((passed + total - nfail))
        failed=$((failed + nfail))
    else
        failed=$((failed + 1))
    fi
    return "$rc"
}

echo "=== normal build (build/) ==="
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo || status=1
echo "=== AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/) ==="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DLARDER_SANITIZE=ON || status=1

echo "=== libFuzzer targets, ${LARDER_FUZZ_SECONDS:-60} s each (build-fuzz/) ==="
CC=clang CTEST_ARGS="-L fuzz" run_suite build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLARDER_FUZZ=ON \
    -DLARDER_FUZZ_SECONDS="${LARDER_FUZZ_SECONDS:-60}" -DLARDER_BUILD_TESTS=ON || status=1

echo "total: $passed passed, $failed failed"
if ((failed > 0)); then
    status=1
fi
exit "$status"
