#!/usr/bin/env bash
# Multi-node fault test (PRODUCT.md §11): cluster mode on this machine, with one NATS
# server, one core and PostgreSQL each killed for some seconds and started again while clicks and
# conversions flow, then checks that nothing was lost, doubled or refused.
#
# The script starts, all on loopback ports of their own and with their stores in a scratch dir:
# a three-node nats-server cluster (JetStream; the click stream created beforehand with 3
# replicas, interest retention and both cores' durable consumers, as `clickgate core` would make
# it, so no click an edge publishes finds no consumer); its own PostgreSQL (initdb, fsync on;
# the system server on 5432 is never touched); two `clickgate core` processes (each its own
# `cluster.durable` and data dir, both on that database); two `clickgate edge` processes
# following its catalog. Every node has the same CLICKGATE_CLICK_KEY and the config
# config/loadtest-core.toml (its demo links, programs, coupons and admin key), with the
# durable of each core, the stream and a short ack wait set here.
#
# `clickgate-loadgen cluster-drive` then clicks through both edges (a browser from many client
# addresses, keep-alive connections; every `cgid` of a 302 is recorded, every other answer or
# missing answer counted) and posts conversions to both cores (each naming a click redirected
# at least 12 s before and its program's coupon, with an Idempotency-Key; a request that fails
# is sent again with the same key to the other core until one acknowledges it). Meanwhile the
# nats-server leading the stream is SIGKILLed and restarted, core 2 is SIGKILLed and restarted,
# and PostgreSQL is stopped with `pg_ctl stop -m immediate` (its crash) and restarted, each down
# for a few seconds, one after another.
#
# Afterwards the edges' spools and both consumers must drain, the cores are stopped, and:
# every click that got a 302 with a cgid is in each core's click log exactly once (the logs are
# read with `clickgate-loadgen click-log`, which counts every occurrence of every click id);
# every acknowledged conversion is stored once in PostgreSQL with at least one commission, each
# commission reserved by exactly one `commission:<id>:reserve:0` transfer, and no transfer cause
# appears twice (psql); `clickgate ledger verify` passes on the database; no conversion was
# refused or left unacknowledged; and the edges answered every click with a redirect.
#
# Usage: loadtest/cluster.sh [options]       (runnable from any directory)
#   --quick             the short form for CI: 45 s of load at 150 clicks/s and 15
#                       conversions/s, each fault 6 s long (about 90 s in all)
#   --duration S        seconds of load (default 120; 45 with --quick)
#   --click-rate R      clicks/s over both edges (default 300; 150 with --quick)
#   --conversion-rate R conversions/s over both cores (default 30; 15 with --quick)
#   --down S            seconds each fault lasts (default 10; 6 with --quick)
#   --keep              keep the scratch dir (stores, data dirs) after the run
#   --no-build          never run cargo; use the binaries in ${CARGO_TARGET_DIR:-target}/release
#   -h, --help          this text
#
# Output: progress on stderr and, as the last line on stdout,
#   cluster clicks_sent=<n> ingested=<n> duplicates=<n> conversions_acked=<n> in_ledger=<n> edge_non_3xx=<n>
# clicks_sent counts click requests; ingested, the clicks with a cgid found in every core's
# click log; duplicates, extra copies of a click in any core's log; in_ledger, the acknowledged
# conversions stored once and reserved once in the ledger; edge_non_3xx, answers that were not
# a redirect plus requests that got no answer. Logs, configs, the recorded ids and summary.txt
# are in loadtest/out/<timestamp>-cluster/. Exit status: 0 when every check passed, 1 when one
# failed, 2 on a usage error.
set -euo pipefail
export LC_ALL=C

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
cd "$ROOT"

# ---- options ---------------------------------------------------------------------------------
QUICK=0
DURATION=""
CLICK_RATE=""
CONVERSION_RATE=""
DOWN=""
KEEP=0
BUILD=1

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
usage_error() { printf 'cluster.sh: %s\n(see --help)\n' "$*" >&2; exit 2; }
need_int() { [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 needs a positive integer, got '${2:-}'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --duration) need_int "$1" "${2:-}"; DURATION=$2; shift 2 ;;
    --click-rate) need_int "$1" "${2:-}"; CLICK_RATE=$2; shift 2 ;;
    --conversion-rate) need_int "$1" "${2:-}"; CONVERSION_RATE=$2; shift 2 ;;
    --down) need_int "$1" "${2:-}"; DOWN=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
if [ "$QUICK" -eq 1 ]; then
  : "${DURATION:=45}" "${CLICK_RATE:=150}" "${CONVERSION_RATE:=15}" "${DOWN:=6}"
else
  : "${DURATION:=120}" "${CLICK_RATE:=300}" "${CONVERSION_RATE:=30}" "${DOWN:=10}"
fi
# The three faults take turns, each with time to recover before the next and before the end.
[ "$DURATION" -ge $(( 6 * DOWN )) ] || usage_error "--duration must be at least 6 times --down ($DOWN s)"

# ---- helpers ---------------------------------------------------------------------------------
log() { printf '[cluster %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'cluster.sh: FAIL: %s\n' "$*" >&2; exit 1; }

. "$HERE/lib.sh"

# kv KEY LINE: the value of KEY in a "key=value key=value" line.
kv() { printf '%s\n' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }

# ---- tools -----------------------------------------------------------------------------------
export PATH="$PATH:/usr/local/bin:/usr/lib/postgresql/15/bin:/usr/sbin:/sbin"
for tool in nats-server curl ss initdb pg_ctl postgres psql; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not on PATH"
done
# PostgreSQL refuses to run as root: then its commands run as the postgres user.
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root, and there is no 'postgres' user to run PostgreSQL as"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

# ---- binaries --------------------------------------------------------------------------------
BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
BIN="$BIN_DIR/clickgate"
LOADGEN="$BIN_DIR/clickgate-loadgen"
if [ "$BUILD" -eq 1 ]; then
  log "building clickgate and clickgate-loadgen (cargo waits if another build holds the lock)"
  cargo build --release --bin clickgate --bin clickgate-loadgen >&2 \
    || die "cargo build --release --bin clickgate --bin clickgate-loadgen failed"
fi
[ -x "$BIN" ] && [ -x "$LOADGEN" ] || die "$BIN and $LOADGEN are not built (run without --no-build)"
BIN=$(cd -- "$(dirname -- "$BIN")" && pwd -P)/clickgate
LOADGEN=$(cd -- "$(dirname -- "$LOADGEN")" && pwd -P)/clickgate-loadgen

# ---- run dir and scratch ---------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="loadtest/out/$STAMP-cluster"
[ ! -e "$RUN" ] || RUN="$RUN-$$"
mkdir -p "$RUN"
RUN=$(cd -- "$RUN" && pwd -P)
# Outside the work tree: PostgreSQL's user must reach its data dir.
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/clickgate-cluster.XXXXXX")
chmod 755 "$SCRATCH"
log "run dir: $RUN; scratch: $SCRATCH"
log "load: ${DURATION}s at $CLICK_RATE clicks/s and $CONVERSION_RATE conversions/s; each fault ${DOWN}s"

NATS_PIDS=("" "" "")
CORE_PIDS=("" "")
EDGE_PIDS=("" "")
DRIVE_PID=""
PG_UP=0
PG_DIR="$SCRATCH/pg"
PG_LOG="$SCRATCH/pg-log/postgres.log"

# kill9 PID: SIGKILL one of our processes and reap it.
kill9() { kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

pg_ctl_start() {
  as_pg pg_ctl -D "$PG_DIR" -l "$PG_LOG" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DIR -c fsync=on -c synchronous_commit=on -c full_page_writes=on" \
    start > /dev/null || die "PostgreSQL did not start; last lines of its log:
$(tail -n 20 "$PG_LOG" 2>/dev/null)"
  PG_UP=1
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  [ -z "$DRIVE_PID" ] || kill9 "$DRIVE_PID"
  for i in 0 1; do stop_proc "${EDGE_PIDS[$i]}" "clickgate edge $((i + 1))" || true; done
  for i in 0 1; do stop_proc "${CORE_PIDS[$i]}" "clickgate core $((i + 1))" || true; done
  # nats-server exits with status 1 on SIGTERM, 0 on SIGINT; both shut it down cleanly.
  for i in 0 1 2; do stop_proc "${NATS_PIDS[$i]}" "nats-server $((i + 1))" INT || true; done
  if [ "$PG_UP" -eq 1 ]; then as_pg pg_ctl -D "$PG_DIR" -m fast -w stop > /dev/null 2>&1 || true; fi
  [ ! -f "$PG_LOG" ] || cp "$PG_LOG" "$RUN/postgres.log" 2>/dev/null || true
  if [ "$KEEP" -eq 0 ]; then rm -rf -- "$SCRATCH"; else log "scratch kept in $SCRATCH"; fi
  log "results in $RUN"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- PostgreSQL ------------------------------------------------------------------------------
free_port PG_PORT
mkdir -p "$PG_DIR" "$(dirname "$PG_LOG")"
[ "$(id -u)" -ne 0 ] || chown postgres: "$PG_DIR" "$(dirname "$PG_LOG")"
chmod 700 "$PG_DIR"
log "PostgreSQL: initdb and start on 127.0.0.1:$PG_PORT (fsync on)"
as_pg initdb -D "$PG_DIR" -U postgres --auth=trust -E UTF8 --no-instructions > "$RUN/initdb.log" 2>&1 \
  || die "initdb failed (see $RUN/initdb.log)"
pg_ctl_start
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'CREATE DATABASE clickgate' > /dev/null \
  || die "cannot create database clickgate"
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/clickgate?connect_timeout=2"
psql_q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d clickgate "$@"; }

# ---- nats-server cluster ---------------------------------------------------------------------
NATS_PORTS=()
ROUTE_PORTS=()
for i in 0 1 2; do free_port p; NATS_PORTS+=("$p"); free_port p; ROUTE_PORTS+=("$p"); done
ROUTES="nats-route://127.0.0.1:${ROUTE_PORTS[0]}, nats-route://127.0.0.1:${ROUTE_PORTS[1]}, nats-route://127.0.0.1:${ROUTE_PORTS[2]}"
NATS_URL="nats://127.0.0.1:${NATS_PORTS[0]},nats://127.0.0.1:${NATS_PORTS[1]},nats://127.0.0.1:${NATS_PORTS[2]}"
start_nats() {   # start_nats INDEX
  local i=$1
  nats-server -c "$RUN/nats-$((i + 1)).conf" >> "$RUN/nats-$((i + 1)).log" 2>&1 &
  NATS_PIDS[i]=$!
}
for i in 0 1 2; do
  mkdir -p "$SCRATCH/nats-$((i + 1))"
  cat > "$RUN/nats-$((i + 1)).conf" <<EOF
server_name: n$((i + 1))
listen: 127.0.0.1:${NATS_PORTS[$i]}
jetstream { store_dir: "$SCRATCH/nats-$((i + 1))" }
cluster {
  name: clickgate-fault-test
  listen: 127.0.0.1:${ROUTE_PORTS[$i]}
  routes: [ $ROUTES ]
}
EOF
  start_nats "$i"
done
log "nats-server cluster: clients on ports ${NATS_PORTS[*]}, routes on ${ROUTE_PORTS[*]}"
for i in 0 1 2; do
  ready=0
  for _ in $(seq 300); do
    kill -0 "${NATS_PIDS[$i]}" 2>/dev/null || die "nats-server $((i + 1)) exited; last lines of its log:
$(tail -n 20 "$RUN/nats-$((i + 1)).log")"
    if grep -q 'Server is ready' "$RUN/nats-$((i + 1)).log"; then ready=1; break; fi
    sleep 0.1
  done
  [ "$ready" -eq 1 ] || die "nats-server $((i + 1)) did not become ready within 30 s (see $RUN/nats-$((i + 1)).log)"
done

# ---- configs ---------------------------------------------------------------------------------
BASE_CONFIG="config/loadtest-core.toml"
STREAM="CLICKGATE_FAULT_TEST"
SUBJECT="clickgate.faulttest.clicks"
DURABLES=(core-1 core-2)
CLICK_KEY="cluster-fault-test-click-key-$STAMP"
# Every core and command-line run on the one database shares its data key (docs/operations.md,
# "Data at rest"); each would otherwise find or make one of its own in its data dir.
DATA_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
# node_config DURABLE FILE: the load test's config with this test's stream and the core's
# durable; its click-id key comes from CLICKGATE_CLICK_KEY, the same on every node. The ack wait
# is short so a killed core's unacked batches come back soon after it restarts.
node_config() {
  sed -e '/^keys = \[{ id = 1, secret = "loadtest-click-id-key/d' \
      -e "s/^stream = .*/stream = \"$STREAM\"/" \
      -e "s/^subject = .*/subject = \"$SUBJECT\"/" \
      -e "s/^durable = .*/durable = \"$1\"/" \
      -e 's/^\[cluster\]$/[cluster]\nack_wait_ms = 5000\npublish_timeout_ms = 2000\nreconnect_delay_ms = 200/' \
      "$BASE_CONFIG" > "$2"
  grep -q "^durable = \"$1\"" "$2" && grep -q "^stream = \"$STREAM\"" "$2" \
    || die "could not set the stream and durable in the [cluster] section of $BASE_CONFIG"
}
node_config "${DURABLES[0]}" "$RUN/core-1.toml"
node_config "${DURABLES[1]}" "$RUN/core-2.toml"
# The edges publish only; a durable of their own would be unused.
node_config "${DURABLES[0]}" "$RUN/edge.toml"

log "creating stream $STREAM (3 replicas) with durables ${DURABLES[*]}"
"$LOADGEN" create-stream --nats-url "$NATS_URL" --stream "$STREAM" --subject "$SUBJECT" \
  --durable "${DURABLES[0]}" --durable "${DURABLES[1]}" --replicas 3 --wait-s 60 --config "$RUN/core-1.toml" \
  > "$RUN/create-stream.txt" 2> "$RUN/create-stream.log" || die "creating the stream failed: $(tail -n 5 "$RUN/create-stream.log")"

# ---- cores and edges -------------------------------------------------------------------------
CORE_API=()
CORE_ADMIN=()
EDGE_ADDR=()
EDGE_ADMIN=()
for i in 0 1; do
  free_port p; CORE_API+=("$p"); free_port p; CORE_ADMIN+=("$p")
  free_port p; EDGE_ADDR+=("$p"); free_port p; EDGE_ADMIN+=("$p")
  mkdir -p "$SCRATCH/core-$((i + 1))" "$SCRATCH/edge-$((i + 1))"
done
start_core() {   # start_core INDEX
  local i=$1
  CLICKGATE_DATABASE_URL="$DATABASE_URL" CLICKGATE_CLICK_KEY="$CLICK_KEY" CLICKGATE_DATA_KEY="$DATA_KEY" \
    "$BIN" --config "$RUN/core-$((i + 1)).toml" --data-dir "$SCRATCH/core-$((i + 1))" core --nats-url "$NATS_URL" \
    --api-listen "127.0.0.1:${CORE_API[$i]}" --admin-listen "127.0.0.1:${CORE_ADMIN[$i]}" \
    >> "$RUN/core-$((i + 1)).stdout.log" 2>> "$RUN/core-$((i + 1)).log" &
  CORE_PIDS[i]=$!
}
start_edge() {   # start_edge INDEX
  local i=$1
  CLICKGATE_DATABASE_URL="$DATABASE_URL" CLICKGATE_CLICK_KEY="$CLICK_KEY" CLICKGATE_DATA_KEY="$DATA_KEY" \
    "$BIN" --config "$RUN/edge.toml" --data-dir "$SCRATCH/edge-$((i + 1))" edge --nats-url "$NATS_URL" \
    --edge-listen "127.0.0.1:${EDGE_ADDR[$i]}" --admin-listen "127.0.0.1:${EDGE_ADMIN[$i]}" \
    >> "$RUN/edge-$((i + 1)).stdout.log" 2>> "$RUN/edge-$((i + 1)).log" &
  EDGE_PIDS[i]=$!
}
wait_ready() {   # wait_ready NAME PID ADMIN_PORT LOG
  for _ in $(seq 600); do
    kill -0 "$2" 2>/dev/null || die "$1 exited; last lines of $4:
$(tail -n 30 "$4")"
    if curl -sf --max-time 1 "http://127.0.0.1:$3/readyz" > /dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$1 did not become ready within 60 s (see $4)"
}
# The first core migrates the fresh database and seeds the demo catalog; the rest start after it.
log "starting core 1 (migrates and seeds the database), then core 2 and two edges"
start_core 0
wait_ready "clickgate core 1" "${CORE_PIDS[0]}" "${CORE_ADMIN[0]}" "$RUN/core-1.log"
start_core 1
wait_ready "clickgate core 2" "${CORE_PIDS[1]}" "${CORE_ADMIN[1]}" "$RUN/core-2.log"
for i in 0 1; do
  start_edge "$i"
  wait_ready "clickgate edge $((i + 1))" "${EDGE_PIDS[$i]}" "${EDGE_ADMIN[$i]}" "$RUN/edge-$((i + 1)).log"
done
"$LOADGEN" consumers --nats-url "$NATS_URL" --stream "$STREAM" --durable "${DURABLES[0]}" --durable "${DURABLES[1]}" --wait-s 5 \
  > "$RUN/consumers-start.txt" 2>&1 || die "the stream or its consumers are not as created: $(tail -n 3 "$RUN/consumers-start.txt")"

# ---- load and faults -------------------------------------------------------------------------
log "driving clicks through both edges and conversions through both cores for ${DURATION}s"
"$LOADGEN" cluster-drive \
  --edge "127.0.0.1:${EDGE_ADDR[0]}" --edge "127.0.0.1:${EDGE_ADDR[1]}" \
  --api "127.0.0.1:${CORE_API[0]}" --api "127.0.0.1:${CORE_API[1]}" \
  --duration-s "$DURATION" --click-rate "$CLICK_RATE" --conversion-rate "$CONVERSION_RATE" \
  --config "$RUN/core-1.toml" --run-id "$STAMP" --out "$RUN" \
  > "$RUN/drive.txt" 2> "$RUN/drive.log" &
DRIVE_PID=$!
T0=$SECONDS
# at S: sleeps until S seconds after the load started.
at() { local left=$(( $1 - (SECONDS - T0) )); [ "$left" -le 0 ] || sleep "$left"; }
alive() {   # alive: every node that should be running is; the load generator too
  local i
  for i in 0 1; do kill -0 "${EDGE_PIDS[$i]}" 2>/dev/null || die "clickgate edge $((i + 1)) exited (see $RUN/edge-$((i + 1)).log)"; done
  kill -0 "$DRIVE_PID" 2>/dev/null || die "clickgate-loadgen cluster-drive exited early: $(tail -n 5 "$RUN/drive.log")"
}
FAULTS=()
STEP=$(( DURATION / 6 ))

at "$STEP"; alive
# The server leading the stream's group, so its loss makes the other two elect a new leader.
LEADER=$(kv leader "$(tail -n 1 "$RUN/consumers-start.txt")")
case "$LEADER" in n1|n2|n3) VICTIM=$(( ${LEADER#n} - 1 )) ;; *) VICTIM=0 ;; esac
log "fault 1: SIGKILL nats-server $((VICTIM + 1)) (the stream's leader was ${LEADER:-unknown}) for ${DOWN}s"
kill9 "${NATS_PIDS[$VICTIM]}"; NATS_PIDS[VICTIM]=""
at $(( STEP + DOWN ))
start_nats "$VICTIM"
FAULTS+=("nats-server $((VICTIM + 1)) (stream leader ${LEADER:-unknown}) SIGKILLed at ${STEP}s, restarted at $(( SECONDS - T0 ))s")
log "  nats-server $((VICTIM + 1)) restarted"

at $(( 3 * STEP )); alive
log "fault 2: SIGKILL clickgate core 2 for ${DOWN}s"
kill9 "${CORE_PIDS[1]}"; CORE_PIDS[1]=""
at $(( 3 * STEP + DOWN ))
start_core 1
wait_ready "clickgate core 2" "${CORE_PIDS[1]}" "${CORE_ADMIN[1]}" "$RUN/core-2.log"
FAULTS+=("clickgate core 2 SIGKILLed at $(( 3 * STEP ))s, ready again at $(( SECONDS - T0 ))s")
log "  clickgate core 2 restarted"

at $(( 5 * STEP )); alive
log "fault 3: PostgreSQL stopped (-m immediate) for ${DOWN}s"
as_pg pg_ctl -D "$PG_DIR" -m immediate -w stop > /dev/null 2>&1 || die "pg_ctl stop -m immediate failed"
PG_UP=0
at $(( 5 * STEP + DOWN ))
pg_ctl_start
FAULTS+=("PostgreSQL crashed (pg_ctl stop -m immediate) at $(( 5 * STEP ))s, up again at $(( SECONDS - T0 ))s")
log "  PostgreSQL restarted"

rc=0
wait "$DRIVE_PID" || rc=$?
DRIVE_PID=""
[ "$rc" -eq 0 ] || die "clickgate-loadgen cluster-drive failed (status $rc): $(tail -n 5 "$RUN/drive.log")"
DRIVE=$(tail -n 1 "$RUN/drive.txt")
log "  $DRIVE"

# ---- drain -----------------------------------------------------------------------------------
for i in 0 1; do kill -0 "${CORE_PIDS[$i]}" 2>/dev/null || die "clickgate core $((i + 1)) exited (see $RUN/core-$((i + 1)).log)"; done
metric() {   # metric ADMIN_PORT NAME: a sample's value as an integer (empty when unreadable)
  curl -sf --max-time 2 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { printf "%d\n", v + 0 }'
}
log "waiting for the edges' spools to empty"
drain_start=$SECONDS
for i in 0 1; do
  while :; do
    left=$(metric "${EDGE_ADMIN[$i]}" clickgate_cluster_spool_bytes) || left=""
    [ "$left" != 0 ] || break
    [ $(( SECONDS - drain_start )) -lt 120 ] || die "edge $((i + 1))'s spool still holds ${left:-?} bytes after 120 s"
    sleep 0.5
  done
done
log "waiting for both cores to drain the stream"
"$LOADGEN" consumers --nats-url "$NATS_URL" --stream "$STREAM" --durable "${DURABLES[0]}" --durable "${DURABLES[1]}" --wait-s 180 \
  > "$RUN/consumers-end.txt" 2> "$RUN/consumers-end.log" || die "the cores did not drain the stream: $(tail -n 2 "$RUN/consumers-end.log")"
log "  $(tail -n 1 "$RUN/consumers-end.txt") after $(( SECONDS - drain_start ))s"
for i in 0 1; do
  curl -sf --max-time 2 "http://127.0.0.1:${EDGE_ADMIN[$i]}/metrics" > "$RUN/metrics-edge-$((i + 1)).txt" || true
  curl -sf --max-time 2 "http://127.0.0.1:${CORE_ADMIN[$i]}/metrics" > "$RUN/metrics-core-$((i + 1)).txt" || true
done
for i in 0 1; do
  stop_proc "${CORE_PIDS[$i]}" "clickgate core $((i + 1))" || die "clickgate core $((i + 1)) did not stop cleanly on SIGTERM (see $RUN/core-$((i + 1)).log)"
  CORE_PIDS[i]=""
done

# ---- checks ----------------------------------------------------------------------------------
FAILS=()
CLICKS_SENT=$(kv clicks_sent "$DRIVE")
CGIDS=$(kv cgids "$DRIVE")
EDGE_NON_3XX=$(kv edge_non_3xx "$DRIVE")
[ "$EDGE_NON_3XX" -eq 0 ] || FAILS+=("the edges answered $EDGE_NON_3XX clicks with something other than a redirect, or not at all ($(kv statuses "$DRIVE") no_answer=$(kv no_answer "$DRIVE"))")
[ "$(kv no_cgid "$DRIVE")" -eq 0 ] || FAILS+=("$(kv no_cgid "$DRIVE") redirects carried no cgid")
[ "$(kv distinct_cgids "$DRIVE")" -eq "$CGIDS" ] || FAILS+=("the edges minted the same cgid twice")
[ "$CGIDS" -gt 0 ] || FAILS+=("no click got a cgid")

INGESTED=""
DUPLICATES=0
for i in 0 1; do
  LOGLINE=$("$LOADGEN" click-log --dir "$SCRATCH/core-$((i + 1))/clicks" --cgids "$RUN/clicks.txt" 2> "$RUN/click-log-$((i + 1)).log") \
    || die "reading core $((i + 1))'s click log failed: $(tail -n 3 "$RUN/click-log-$((i + 1)).log")"
  printf '%s\n' "$LOGLINE" > "$RUN/click-log-$((i + 1)).txt"
  log "  core $((i + 1)) click log: $LOGLINE"
  found=$(kv found "$LOGLINE"); dups=$(kv duplicates "$LOGLINE")
  DUPLICATES=$(( DUPLICATES + dups ))
  if [ -z "$INGESTED" ] || [ "$found" -lt "$INGESTED" ]; then INGESTED=$found; fi
  [ "$(kv missing "$LOGLINE")" -eq 0 ] || FAILS+=("core $((i + 1))'s click log lacks $(kv missing "$LOGLINE") of the $CGIDS redirected clicks (see $RUN/click-log-$((i + 1)).log)")
  [ "$dups" -eq 0 ] || FAILS+=("core $((i + 1))'s click log holds $dups extra copies of clicks (see $RUN/click-log-$((i + 1)).log)")
  [ "$(kv undecodable "$LOGLINE")" -eq 0 ] || FAILS+=("core $((i + 1))'s click log has $(kv undecodable "$LOGLINE") undecodable frames")
done

ACKED=$(kv conversions_acked "$DRIVE")
[ "$(kv conversions_rejected "$DRIVE")" -eq 0 ] || FAILS+=("$(kv conversions_rejected "$DRIVE") conversions were refused (see $RUN/drive.log)")
[ "$(kv conversions_unacked "$DRIVE")" -eq 0 ] || FAILS+=("$(kv conversions_unacked "$DRIVE") conversions were never acknowledged (see $RUN/drive.log)")
[ "$ACKED" -eq "$(kv conversions_started "$DRIVE")" ] || FAILS+=("$ACKED of $(kv conversions_started "$DRIVE") conversions were acknowledged")
[ "$ACKED" -gt 0 ] || FAILS+=("no conversion was acknowledged")
# One query: the acknowledged ids loaded into a temporary table, then each conversion's row, its
# commissions and their reserve transfers counted.
LEDGER=$(psql_q <<SQL
CREATE TEMP TABLE acked (id TEXT NOT NULL);
\\copy acked FROM '$RUN/conversions.txt'
CREATE TEMP TABLE causes AS SELECT cause, count(*) AS n FROM ledger_transfers GROUP BY cause;
CREATE TEMP TABLE rows_of AS
  SELECT a.id, count(c.id) AS n FROM (SELECT DISTINCT id FROM acked) a LEFT JOIN conversions c ON c.id = a.id GROUP BY a.id;
CREATE TEMP TABLE reserves_of AS
  SELECT m.conversion_id AS id, count(*) AS commissions, count(*) FILTER (WHERE t.n = 1) AS reserved_once
  FROM commissions m LEFT JOIN causes t ON t.cause = 'commission:' || m.id || ':reserve:0' GROUP BY m.conversion_id;
SELECT concat_ws(' ',
  'acked=' || (SELECT count(*) FROM acked),
  'distinct=' || (SELECT count(*) FROM rows_of),
  'stored=' || (SELECT count(*) FROM rows_of WHERE n > 0),
  'commissions=' || (SELECT coalesce(sum(r.commissions), 0) FROM reserves_of r JOIN rows_of a ON a.id = r.id),
  'in_ledger=' || (SELECT count(*) FROM rows_of a JOIN reserves_of r ON r.id = a.id WHERE a.n = 1 AND r.reserved_once = r.commissions),
  'repeated_causes=' || (SELECT count(*) FROM causes WHERE n > 1),
  'conversions_total=' || (SELECT count(*) FROM conversions),
  'transfers=' || (SELECT count(*) FROM ledger_transfers));
SQL
) || die "querying the ledger failed"
LEDGER=$(printf '%s\n' "$LEDGER" | tail -n 1)
printf '%s\n' "$LEDGER" > "$RUN/ledger.txt"
log "  ledger: $LEDGER"
IN_LEDGER=$(kv in_ledger "$LEDGER")
[ "$(kv distinct "$LEDGER")" -eq "$ACKED" ] || FAILS+=("$ACKED acknowledgements named only $(kv distinct "$LEDGER") distinct conversions")
[ "$IN_LEDGER" -eq "$ACKED" ] || FAILS+=("only $IN_LEDGER of $ACKED acknowledged conversions are stored and reserved exactly once")
[ "$(kv repeated_causes "$LEDGER")" -eq 0 ] || FAILS+=("$(kv repeated_causes "$LEDGER") ledger transfer causes appear more than once")
[ "$(kv conversions_total "$LEDGER")" -eq "$ACKED" ] || FAILS+=("the database holds $(kv conversions_total "$LEDGER") conversions, $ACKED acknowledged")

CLICKGATE_DATABASE_URL="$DATABASE_URL" CLICKGATE_CLICK_KEY="$CLICK_KEY" CLICKGATE_DATA_KEY="$DATA_KEY" \
  "$BIN" --config "$RUN/core-1.toml" --data-dir "$SCRATCH/core-1" ledger verify > "$RUN/ledger-verify.txt" 2>&1 \
  || FAILS+=("clickgate ledger verify failed: $(head -n 3 "$RUN/ledger-verify.txt")")
VERIFY_LINE=$(grep -m1 '^ledger clean' "$RUN/ledger-verify.txt" || true)
[ -n "$VERIFY_LINE" ] || FAILS+=("clickgate ledger verify printed no 'ledger clean' line (see $RUN/ledger-verify.txt)")
log "  ${VERIFY_LINE:-ledger verify: see $RUN/ledger-verify.txt}"

# ---- summary ---------------------------------------------------------------------------------
FINAL="cluster clicks_sent=$CLICKS_SENT ingested=$INGESTED duplicates=$DUPLICATES conversions_acked=$ACKED in_ledger=$IN_LEDGER edge_non_3xx=$EDGE_NON_3XX"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock config loadtest 2>/dev/null || commit="$commit+dirty"
{
  echo "Multi-node fault test, $STAMP: clickgate $commit, nats-server $(nats-server --version 2>&1 | awk '{ print $2 }') (3 nodes, stream R3),"
  echo "PostgreSQL $(postgres --version | awk '{ print $3 }'), 2 edges, 2 cores; ${DURATION}s of load at $CLICK_RATE clicks/s and $CONVERSION_RATE conversions/s."
  printf 'Fault: %s\n' "${FAULTS[@]}"
  echo "Load: $DRIVE"
  echo "Drain: $(tail -n 1 "$RUN/consumers-end.txt")"
  echo "Click logs: core 1 $(cat "$RUN/click-log-1.txt"); core 2 $(cat "$RUN/click-log-2.txt")"
  echo "Ledger: $LEDGER; ${VERIFY_LINE:-ledger verify failed}"
  if [ "${#FAILS[@]}" -gt 0 ]; then printf 'FAILED: %s\n' "${FAILS[@]}"; fi
  echo "$FINAL"
} > "$RUN/summary.txt"
if [ "${#FAILS[@]}" -gt 0 ]; then
  printf 'cluster.sh: FAIL: %s\n' "${FAILS[@]}" >&2
  printf '%s\n' "$FINAL"
  exit 1
fi
printf '%s\n' "$FINAL"
