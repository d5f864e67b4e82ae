#!/usr/bin/env bash
# The fast loop (npm run test:unit; docs/testing.md): the TypeScript unit tests, which boot no
# QEMU, and the hypervisor's host unit tests (make -C hv test, ASan + UBSan), side by side.
# npm test runs all of these too, serially, with the fuzzers and the QEMU suites.
set -u
cd "$(dirname "$0")/.."

# The tests/*.test.ts files that need no QEMU and no build but the host tools they make themselves;
# all start at once, the slowest (token: cryptsetup and SoftHSM2) first.
UNIT_TESTS=(tests/token.test.ts tests/policy.test.ts tests/disk.test.ts tests/crypto.test.ts tests/layers.test.ts)

mkdir -p build
hvlog=build/unit-hv.log
make -s -C hv test > "$hvlog" 2>&1 &
hv=$!
trap 'kill "$hv" 2>/dev/null' INT TERM

node --import tsx --test --test-concurrency=${#UNIT_TESTS[@]} "${UNIT_TESTS[@]}"
ts=$?

wait "$hv"
hvs=$?
grep -E '^(FAIL|unit:)' "$hvlog" | sed 's/^/make -C hv test: /'
if [ "$hvs" -ne 0 ]; then
  echo "make -C hv test failed (exit $hvs); its output, $hvlog:" >&2
  tail -n 60 "$hvlog" >&2
fi
[ "$ts" -eq 0 ] && [ "$hvs" -eq 0 ]
