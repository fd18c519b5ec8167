#!/usr/bin/env bash
# Crash test: conversions stream at full speed into `clickgate serve` (embedded mode) while it is
# killed with SIGKILL at random moments and restarted on the same data dir (PRODUCT.md §11:
# 200 kill points for the full run; `cargo test` runs the same test with 12).
#
# This runs tests/ledger_crash.rs with a chosen count. Its clients (24 keep-alive HTTP/1.1
# connections) send conversions under coupon BOB10 with random amounts, partial and full refunds
# of acknowledged ones (~10%) and exact retries of acknowledged requests (~5%, which must replay
# the first answer); a request cut by a kill is retried with the same Idempotency-Key until it is
# answered. Each kill comes 100-600 ms after the stream was first answered again following the
# restart before it; every third kill, bob's approved commissions are settled by hand with
# `clickgate payouts settle` while the server is down. Checks, after the last restart: every
# acknowledged conversion is stored and accrued exactly once with the commissions its answer
# named, each reserved by exactly one `commission:<id>:reserve:0` transfer; every transfer cause
# appears once and matches its commission's events or its payout; each payout has one pending
# transfer and one post of its amount (what its commissions had left, capped by what bob owed)
# and its commissions a `paid` event and no transfer of their own; refunded amounts equal the
# acknowledged refunds; debits equal credits; `PRAGMA integrity_check` is ok; `clickgate ledger
# verify` exits 0.
#
# Usage: loadtest/crash.sh [options]         (runnable from any directory)
#   --kills N           SIGKILLs (default 200)
#   --seed N            seed of the kill moments, amounts and mix (default: random; printed)
#   --clients N         concurrent API clients (default 24)
#   --no-build          never run cargo; use the ledger_crash test binary already built
#   -h, --help          this text
#
# Output: the test's figures and, as the last line,
#   crash kills=<n> conversions_acked=<n> refunds_acked=<n> retried=<n> transfers=<n> elapsed_s=<s>
# The whole output is in loadtest/out/<timestamp>-crash/output.txt. Exit status: 0 when every
# check passed, 1 when one failed, 2 on a usage error.
set -euo pipefail
export LC_ALL=C

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
# clickgate resolves the paths in its config (geoip/, config/bots/) from the working directory.
cd "$ROOT"

# ---- options ---------------------------------------------------------------------------------
KILLS=200
SEED=""
CLIENTS=24
BUILD=1

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
usage_error() { printf 'crash.sh: %s\n(see --help)\n' "$*" >&2; exit 2; }
need_int() { [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 needs a positive integer, got '${2:-}'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --kills) need_int "$1" "${2:-}"; KILLS=$2; shift 2 ;;
    --seed) [[ "${2:-}" =~ ^[0-9]+$ ]] || usage_error "--seed needs a number, got '${2:-}'"; SEED=$2; shift 2 ;;
    --clients) need_int "$1" "${2:-}"; CLIENTS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

# ---- helpers ---------------------------------------------------------------------------------
log() { printf '[crash %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'crash.sh: FAIL: %s\n' "$*" >&2; exit 1; }

# ---- the test binary -------------------------------------------------------------------------
TEST_BIN=""
if [ "$BUILD" -eq 1 ]; then
  log "building the test (cargo waits if another build holds the lock)"
  BUILD_OUT=$(cargo test --release --test ledger_crash --no-run 2>&1) || { printf '%s\n' "$BUILD_OUT" >&2; die "cargo test --release --test ledger_crash --no-run failed"; }
  TEST_BIN=$(printf '%s\n' "$BUILD_OUT" | sed -n 's/.*Executable tests\/ledger_crash.rs (\(.*\))$/\1/p' | tail -n 1)
else
  # The newest build of the test, without asking cargo.
  TEST_BIN=$(find target/release/deps -maxdepth 1 -type f -name 'ledger_crash-*' ! -name '*.d' -perm -u+x -printf '%T@ %p\n' 2>/dev/null \
    | sort -rn | head -n 1 | cut -d' ' -f2-)
fi
[ -n "$TEST_BIN" ] && [ -x "$TEST_BIN" ] || die "no ledger_crash test binary (run without --no-build)"
log "test binary: $TEST_BIN"

# ---- run -------------------------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="loadtest/out/$STAMP-crash"
[ ! -e "$RUN" ] || RUN="$RUN-$$"
mkdir -p "$RUN"
log "run dir: $RUN; $KILLS kills, $CLIENTS clients, seed ${SEED:-random}"

export CLICKGATE_CRASH_KILLS=$KILLS CLICKGATE_CRASH_CLIENTS=$CLIENTS
if [ -n "$SEED" ]; then export CLICKGATE_CRASH_SEED=$SEED; fi
# The figures show as they come; everything goes to output.txt.
set +e
"$TEST_BIN" --exact acknowledged_conversions_survive_sigkill_exactly_once --nocapture --test-threads 1 2>&1 \
  | tee "$RUN/output.txt" | sed -un '/^ledger_crash: summary /d; s/^.*\(ledger_crash: \)/\1/p'
rc=${PIPESTATUS[0]}
set -e
summary=$(sed -n 's/^ledger_crash: summary /crash /p' "$RUN/output.txt" | tail -n 1)
if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
  # The failure message names the seed and what was lost, duplicated or broken.
  grep -v 'ledger_crash: ' "$RUN/output.txt" | grep -v '^\s*[0-9]*: \|^\s*at ' | tail -n 80 >&2 || true
  die "the crash test failed (exit $rc); full output in $RUN/output.txt"
fi
printf '%s\n' "$summary"
