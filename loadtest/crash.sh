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
# With --pg it runs tests/ledger_crash_pg.rs instead: two `clickgate core` processes (cluster
# mode, each its own data dir and JetStream durable on a nats-server of the test's own) write
# one fresh PostgreSQL schema while the clients spread their requests over both cores' APIs as a
# load balancer would. One core at a time, alternately, is SIGKILLed 100-600 ms after the core
# killed before answered again, stays down 0-300 ms and is restarted; a request cut by a kill,
# or sent to the core that is down, is retried with the same Idempotency-Key on the other core,
# and 3% of requests go to both cores at once (a load balancer's retry after a timeout): both
# copies must get the same answer, at least one a replay. The same checks then run on the
# schema (no payouts settled by hand, no integrity_check: a core is always up), and `clickgate
# ledger verify` on the schema exits 0. It needs nats-server on PATH and PostgreSQL at
# 127.0.0.1:5432 (CLICKGATE_TEST_POSTGRES_URL names another).
#
# Usage: loadtest/crash.sh [options]         (runnable from any directory)
#   --pg                two cores on PostgreSQL (tests/ledger_crash_pg.rs) instead of `serve`
#   --kills N           SIGKILLs (default 200, or 50 with --pg)
#   --seed N            seed of the kill moments, amounts and mix (default: random; printed)
#   --clients N         concurrent API clients (default 24)
#   --no-build          never run cargo; use the test binary already built
#   -h, --help          this text
#
# Output: the test's figures and, as the last line,
#   crash kills=<n> conversions_acked=<n> refunds_acked=<n> retried=<n> transfers=<n> elapsed_s=<s>
# or with --pg
#   crash-pg kills=<n> conversions_acked=<n> refunds_acked=<n> retried=<n> answered_elsewhere=<n> hedged=<n> transfers=<n> elapsed_s=<s>
# (answered_elsewhere: retried requests the other core answered; hedged: requests sent to both
# cores at once).
# The whole output is in loadtest/out/<timestamp>-crash/output.txt (-crash-pg with --pg). Exit status: 0 when every
# check passed, 1 when one failed, 2 on a usage error.
set -euo pipefail
export LC_ALL=C

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
# clickgate resolves the paths in its config (geoip/, config/bots/) from the working directory.
cd "$ROOT"

# ---- options ---------------------------------------------------------------------------------
KILLS=""
SEED=""
CLIENTS=24
BUILD=1
PG=0

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
usage_error() { printf 'crash.sh: %s\n(see --help)\n' "$*" >&2; exit 2; }
need_int() { [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 needs a positive integer, got '${2:-}'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --kills) need_int "$1" "${2:-}"; KILLS=$2; shift 2 ;;
    --seed) [[ "${2:-}" =~ ^[0-9]+$ ]] || usage_error "--seed needs a number, got '${2:-}'"; SEED=$2; shift 2 ;;
    --clients) need_int "$1" "${2:-}"; CLIENTS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --pg) PG=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

if [ "$PG" -eq 1 ]; then
  TEST=ledger_crash_pg FN=two_cores_on_postgres_count_acknowledged_conversions_once_through_sigkills NAME=crash-pg
  KILLS=${KILLS:-50}
else
  TEST=ledger_crash FN=acknowledged_conversions_survive_sigkill_exactly_once NAME=crash
  KILLS=${KILLS:-200}
fi

# ---- helpers ---------------------------------------------------------------------------------
log() { printf '[crash %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'crash.sh: FAIL: %s\n' "$*" >&2; exit 1; }

# ---- the test binary -------------------------------------------------------------------------
TEST_BIN=""
if [ "$BUILD" -eq 1 ]; then
  log "building the test (cargo waits if another build holds the lock)"
  BUILD_OUT=$(cargo test --release --test "$TEST" --no-run 2>&1) || { printf '%s\n' "$BUILD_OUT" >&2; die "cargo test --release --test $TEST --no-run failed"; }
  TEST_BIN=$(printf '%s\n' "$BUILD_OUT" | sed -n "s/.*Executable tests\/$TEST.rs (\(.*\))\$/\1/p" | tail -n 1)
else
  # The newest build of the test, without asking cargo.
  TEST_BIN=$(find "${CARGO_TARGET_DIR:-target}/release/deps" -maxdepth 1 -type f -name "$TEST-*" ! -name '*.d' -perm -u+x -printf '%T@ %p\n' 2>/dev/null \
    | sort -rn | head -n 1 | cut -d' ' -f2-)
fi
[ -n "$TEST_BIN" ] && [ -x "$TEST_BIN" ] || die "no $TEST test binary (run without --no-build)"
log "test binary: $TEST_BIN"

# ---- run -------------------------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="loadtest/out/$STAMP-$NAME"
[ ! -e "$RUN" ] || RUN="$RUN-$$"
mkdir -p "$RUN"
log "run dir: $RUN; $KILLS kills, $CLIENTS clients, seed ${SEED:-random}"

export CLICKGATE_CRASH_KILLS=$KILLS CLICKGATE_CRASH_CLIENTS=$CLIENTS
if [ -n "$SEED" ]; then export CLICKGATE_CRASH_SEED=$SEED; fi
# The figures show as they come; everything goes to output.txt.
set +e
# The PostgreSQL test is ignored unless asked for; --exact names the one test either way.
"$TEST_BIN" --exact "$FN" --include-ignored --nocapture --test-threads 1 2>&1 \
  | tee "$RUN/output.txt" | sed -un "/^$TEST: summary /d; s/^.*\($TEST: \)/\1/p"
rc=${PIPESTATUS[0]}
set -e
summary=$(sed -n "s/^$TEST: summary /$NAME /p" "$RUN/output.txt" | tail -n 1)
if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
  # The failure message names the seed and what was lost, duplicated or broken.
  grep -v "$TEST: " "$RUN/output.txt" | grep -v '^\s*[0-9]*: \|^\s*at ' | tail -n 80 >&2 || true
  die "the crash test failed (exit $rc); full output in $RUN/output.txt"
fi
printf '%s\n' "$summary"
