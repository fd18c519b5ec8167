#!/usr/bin/env bash
# Core load test: click events/s that `clickgate core` consumes from NATS JetStream and ingests
# (append + fdatasync + index, then ack), against a null consumer that only acks, side by side
# in one run on one nats-server (PRODUCT.md §10, "Core": at least 200k click events/s).
#
# The script starts its own `nats-server -js` on a free loopback port. Events travel as the edge
# sends them: batches of up to `cluster.publish_batch_len_max` (256) events per message, with
# message ids built from the batch's span. Reference: N events published to a stream of their
# own, drained by `clickgate-loadgen null-consume` (the core's consumer settings and fetch size,
# events counted, no decoding, no write). Core: `clickgate core` creates its stream and is
# stopped; the same N events are published as a backlog; the core starts again, and the rate is
# measured from the first movement of `clickgate_cluster_consumed_total` to N (polled every
# 100 ms). nats-server's CPU per event (utime+stime from /proc) is reported for both phases.
# Checks: every event ingested once, none counted as a duplicate; then the same N are published
# again and must all be dropped, by JetStream's duplicate window or by the core.
#
# Then conversions/s through the real API (PRODUCT.md §10, "Core": at least 20k conversions/s
# attributed, commissioned and committed with fsync): `clickgate-loadgen conversions` posts M
# conversions over C keep-alive connections to the same running core, each with the click id
# of a valid click it has just ingested, and counts the 201s. Reference: plain SQLite on the
# same disk inserting one row per conversion, in groups of the size the core's grouped commits
# had (WAL, synchronous=FULL). Checks: every conversion answered 201 and attributed by click id,
# and `clickgate ledger verify` finds the ledger clean, with a commission reserve per conversion
# at least, after the core stops.
#
# Usage: loadtest/core.sh [options]          (runnable from any directory)
#   --events N          events per phase (default 1000000; 100000 with --quick)
#   --conversions M     conversions posted to the API (default 200000; 20000 with --quick)
#   --connections C     keep-alive API connections posting them (default 512)
#   --quick             smoke run: 100000 events, 20000 conversions
#   --seed N            seed of the generated clicks (default 42)
#   --keep              keep the scratch data (nats store, core data dir, saved events)
#   --no-build          never run cargo, even if the binaries look older than the sources
#   --quiet-wait S      before each measured phase, wait up to S seconds (default 60) for other
#                       processes to use at most 0.25 cores; the phase then runs anyway
#   -h, --help          this text
#
# Output: a Markdown summary (references vs core) and, as the last line,
#   core ingest_events_per_s=<n> conversions_per_s=<m> nats_cpu_us_per_click=<c> reference_events_per_s=<r>
# Everything (logs, publish and consume outputs, metrics, summary.md) is in
# loadtest/out/<timestamp>-core/. Exit status: 0 when every check passed, 1 when one failed,
# 2 on a usage error.
set -euo pipefail
export LC_ALL=C   # '.' as decimal point in $EPOCHREALTIME and awk

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
cd "$ROOT"

# ---- options ---------------------------------------------------------------------------------
EVENTS=1000000
CONVERSIONS=200000
CONNECTIONS=512
conversions_set=0
QUICK=0
KEEP=0
BUILD=1
SEED=42
events_set=0
POLL_S=0.1           # how often /metrics is read while the core drains (each read is a curl:
                     # about 6 ms of CPU on the 2 cores being measured)
STALL_S=60           # no progress for this long fails the run (a hang, not a timing)
OTHER_MAX=0.25       # cores used by other processes above which a phase waits
QUIET_WAIT=60

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
usage_error() { printf 'core.sh: %s\n(see --help)\n' "$*" >&2; exit 2; }
need_int() { [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 needs a positive integer, got '${2:-}'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --events) need_int "$1" "${2:-}"; EVENTS=$2; events_set=1; shift 2 ;;
    --conversions) need_int "$1" "${2:-}"; CONVERSIONS=$2; conversions_set=1; shift 2 ;;
    --connections) need_int "$1" "${2:-}"; CONNECTIONS=$2; shift 2 ;;
    --seed) need_int "$1" "${2:-}"; SEED=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --keep) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --quiet-wait) [[ "${2:-}" =~ ^[0-9]+$ ]] || usage_error "--quiet-wait needs a number of seconds"; QUIET_WAIT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
if [ "$QUICK" -eq 1 ] && [ "$events_set" -eq 0 ]; then EVENTS=100000; fi
if [ "$QUICK" -eq 1 ] && [ "$conversions_set" -eq 0 ]; then CONVERSIONS=20000; fi

# ---- helpers ---------------------------------------------------------------------------------
log() { printf '[core %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'core.sh: FAIL: %s\n' "$*" >&2; exit 1; }
calc() { awk "BEGIN { printf \"${2:-%.6f}\", ($1) }"; }
CLK_TCK=$(getconf CLK_TCK)

# utime+stime of one process (all its threads), in clock ticks; 0 if it is gone.
proc_ticks() {
  local s f
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  read -r -a f <<< "$s"
  echo $(( f[11] + f[12] ))
}

# utime+stime of this shell plus every child it has reaped (curl, clickgate-loadgen, awk...).
self_ticks() {
  local s f
  s=$(cat "/proc/$$/stat")
  s=${s##*) }
  read -r -a f <<< "$s"
  echo $(( f[11] + f[12] + f[13] + f[14] ))
}

# Busy ticks of the whole machine: user+nice+system+irq+softirq+steal (idle and iowait excluded).
machine_busy() {
  local _cpu u n s i w irq sirq st _rest
  read -r _cpu u n s i w irq sirq st _rest < /proc/stat
  echo $(( u + n + s + irq + sirq + ${st:-0} ))
}

. "$HERE/lib.sh"

# kv KEY LINE: the value of KEY in a "key=value key=value" line.
kv() { printf '%s\n' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }

# ---- tools -----------------------------------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"
ensure_apt() {   # ensure_apt COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" -eq 0 ] || die "'$1' is missing; install it with: sudo apt-get install -y $2"
  log "installing $2 with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "$2" >&2 || { apt-get update >&2 && apt-get install -y "$2" >&2; } \
    || die "apt-get install $2 failed"
  command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing $2"
}
ensure_apt nats-server nats-server
ensure_apt curl curl
ensure_apt ss iproute2

# ---- binaries --------------------------------------------------------------------------------
BIN="target/release/clickgate"
LOADGEN="target/release/clickgate-loadgen"
build() {
  log "$1; building (cargo waits if another build holds the lock)"
  cargo build --release --bin clickgate --bin clickgate-loadgen >&2 \
    || die "cargo build --release --bin clickgate --bin clickgate-loadgen failed"
}
if [ ! -x "$BIN" ] || [ ! -x "$LOADGEN" ]; then
  build "$BIN or $LOADGEN missing"
elif [ "$BUILD" -eq 1 ] && [ -n "$(find src loadtest/loadgen.rs loadtest/loadgen Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)$(find src loadtest/loadgen.rs loadtest/loadgen Cargo.toml Cargo.lock -newer "$LOADGEN" -print -quit 2>/dev/null)" ]; then
  build "the binaries are older than the sources (--no-build skips this)"
fi
[ -x "$BIN" ] && [ -x "$LOADGEN" ] || die "$BIN and $LOADGEN were not built"

# ---- run dir ---------------------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="loadtest/out/$STAMP-core"
[ ! -e "$RUN" ] || RUN="$RUN-$$"
mkdir -p "$RUN"
SCRATCH="$RUN/scratch"
mkdir -p "$SCRATCH/nats" "$SCRATCH/core-data"
EVENTS_FILE="$SCRATCH/events.bin"
log "run dir: $RUN"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

NATS_PID=""
CORE_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_proc "$CORE_PID" "clickgate core" || true
  # nats-server exits with status 1 on SIGTERM, 0 on SIGINT; both shut it down cleanly.
  stop_proc "$NATS_PID" nats-server INT || true
  if [ "$KEEP" -eq 0 ] && [ -d "$SCRATCH" ]; then rm -rf -- "$SCRATCH"; fi
  log "results in $RUN"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- nats-server -----------------------------------------------------------------------------
free_port NATS_PORT
NATS_URL="nats://127.0.0.1:$NATS_PORT"
log "starting nats-server -js on 127.0.0.1:$NATS_PORT (store in $SCRATCH/nats)"
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$SCRATCH/nats" > "$RUN/nats-server.log" 2>&1 &
NATS_PID=$!
ready=0
for _ in $(seq 300); do
  kill -0 "$NATS_PID" 2>/dev/null || die "nats-server exited; last lines of $RUN/nats-server.log:
$(tail -n 20 "$RUN/nats-server.log")"
  if grep -q 'Server is ready' "$RUN/nats-server.log"; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" -eq 1 ] || die "nats-server did not become ready within 30 s (see $RUN/nats-server.log)"
NATS_VERSION=$(nats-server --version 2>&1 | awk '{ print $2 }')

# ---- the core's config -----------------------------------------------------------------------
CONFIG="config/loadtest-core.toml"
cluster_key() {   # cluster_key KEY: a string value from the config's [cluster] section
  awk -v k="$1" '/^\[/ { in_c = ($0 == "[cluster]") } in_c && $1 == k && $2 == "=" { gsub(/"/, "", $3); print $3; exit }' "$CONFIG"
}
STREAM=$(cluster_key stream)
SUBJECT=$(cluster_key subject)
DURABLE=$(cluster_key durable)
DUP_WINDOW_MS=$(cluster_key duplicate_window_ms)
[ -n "$STREAM" ] && [ -n "$SUBJECT" ] && [ -n "$DURABLE" ] && [ -n "$DUP_WINDOW_MS" ] \
  || die "could not read stream, subject, durable and duplicate_window_ms from [cluster] in $CONFIG"
REF_STREAM="LOADTEST_REFERENCE"
REF_SUBJECT="loadtest.reference.clicks"

# loadgen NAME ARGS...: runs clickgate-loadgen, its stdout into $RUN/NAME.txt; echoes the line.
loadgen() {
  local name=$1; shift
  "$LOADGEN" "$@" > "$RUN/$name.txt" 2> "$RUN/$name.log" \
    || die "clickgate-loadgen $1 failed: $(tail -n 5 "$RUN/$name.log")"
  tail -n 1 "$RUN/$name.txt"
}

# wait_quiet LABEL: waits up to QUIET_WAIT s until processes other than nats-server use at most
# OTHER_MAX cores, sampled over 1 s (nothing of ours runs meanwhile). The "other cpu cores"
# column then says what the phase itself saw.
NOTES=()
wait_quiet() {
  local start=$EPOCHREALTIME b0 b1 n0 n1 t0 t1 other said=0
  while :; do
    b0=$(machine_busy); n0=$(proc_ticks "$NATS_PID"); t0=$EPOCHREALTIME
    sleep 1
    b1=$(machine_busy); n1=$(proc_ticks "$NATS_PID"); t1=$EPOCHREALTIME
    other=$(calc "(($b1 - $b0) - ($n1 - $n0)) / $CLK_TCK / ($t1 - $t0)" '%.2f')
    if awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o <= m) }'; then
      [ "$said" -eq 0 ] || NOTES+=("$1: waited $(calc "$EPOCHREALTIME - $start" '%.0f') s for other processes to go quiet")
      return 0
    fi
    if awk -v s="$start" -v now="$EPOCHREALTIME" -v w="$QUIET_WAIT" 'BEGIN { exit !(now - s >= w) }'; then
      NOTES+=("$1: other processes still used $other cores after waiting ${QUIET_WAIT}s; ran anyway")
      log "  machine still busy ($other cores used by other processes); running anyway"
      return 0
    fi
    if [ "$said" -eq 0 ]; then
      log "  machine busy ($other cores used by other processes); waiting up to ${QUIET_WAIT}s"
      said=1
    fi
  done
}

# ---- reference: the null consumer ------------------------------------------------------------
log "reference: publishing $EVENTS events to $REF_STREAM"
loadgen create-reference-stream create-stream --nats-url "$NATS_URL" --stream "$REF_STREAM" \
  --subject "$REF_SUBJECT" --duplicate-window-ms "$DUP_WINDOW_MS" --config "$CONFIG" > /dev/null
PUB_REF=$(loadgen publish-reference clicks --nats-url "$NATS_URL" --subject "$REF_SUBJECT" \
  --count "$EVENTS" --seed "$SEED" --config "$CONFIG" --save "$EVENTS_FILE")
[ "$(kv stored "$PUB_REF")" = "$EVENTS" ] || die "the reference stream stored $(kv stored "$PUB_REF") of $EVENTS events ($PUB_REF)"
log "  $PUB_REF"
log "reference: draining them with the null consumer"
wait_quiet reference
nats0=$(proc_ticks "$NATS_PID"); busy0=$(machine_busy); self0=$(self_ticks); w0=$EPOCHREALTIME
NULL=$(loadgen null-consume null-consume --nats-url "$NATS_URL" --stream "$REF_STREAM" \
  --subject "$REF_SUBJECT" --count "$EVENTS" --config "$CONFIG")
nats1=$(proc_ticks "$NATS_PID"); busy1=$(machine_busy); self1=$(self_ticks); w1=$EPOCHREALTIME
log "  $NULL"
REF_RATE=$(kv rate "$NULL")
REF_TIMED=$(kv timed "$NULL")
REF_SECONDS=$(kv seconds "$NULL")
REF_CPU_US=$(calc "$(kv cpu_ticks "$NULL") * 1000000 / $CLK_TCK / $REF_TIMED" '%.2f')
REF_NATS_US=$(calc "($nats1 - $nats0) * 1000000 / $CLK_TCK / $EVENTS" '%.2f')
# Anything else that ran meanwhile, in cores: the machine's busy time minus nats-server's and
# ours (the null consumer is a reaped child of this shell by now).
REF_OTHER=$(calc "(($busy1 - $busy0) - ($nats1 - $nats0) - ($self1 - $self0)) / $CLK_TCK / ($w1 - $w0)" '%.2f')
[ "$(kv consumed "$NULL")" = "$EVENTS" ] || die "the null consumer got $(kv consumed "$NULL") of $EVENTS events"

# ---- core ------------------------------------------------------------------------------------
free_port API_PORT
free_port ADMIN_PORT
METRICS_URL="http://127.0.0.1:$ADMIN_PORT/metrics"
CORE_RUNS=0
start_core() {
  CORE_RUNS=$(( CORE_RUNS + 1 ))
  "$BIN" --config "$CONFIG" --data-dir "$SCRATCH/core-data" core --nats-url "$NATS_URL" \
    --api-listen "127.0.0.1:$API_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    > "$RUN/core-$CORE_RUNS.stdout.log" 2> "$RUN/core-$CORE_RUNS.log" &
  CORE_PID=$!
}
core_alive() {
  kill -0 "$CORE_PID" 2>/dev/null && return 0
  local rc=0
  wait "$CORE_PID" 2>/dev/null || rc=$?
  CORE_PID=""
  die "clickgate core exited (status $rc). Last lines of $RUN/core-$CORE_RUNS.log:
$(tail -n 30 "$RUN/core-$CORE_RUNS.log")"
}
wait_ready() {
  for _ in $(seq 300); do
    core_alive
    if curl -sf --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" > /dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "clickgate core did not become ready within 30 s (see $RUN/core-$CORE_RUNS.log)"
}
# metric NAME FILE: a sample's value as an integer (0 when absent).
metric() { awk -v n="$1" '$1 == n { v = $2 } END { printf "%d\n", v + 0 }' "$2"; }

# The polling loops below run on the 2 cores they measure, so each poll spawns nothing but curl:
# metrics are matched in bash, the clock is $EPOCHREALTIME, and the pause is a `read -t` on a
# pipe that never delivers.
exec {NAP_FD}<> <(:)
nap() { read -r -t "$1" -u "$NAP_FD" _ || true; }
now_us() { NOW_US=${EPOCHREALTIME/./}; }
# scrape: /metrics into BODY; false while the admin listener does not answer.
scrape() { BODY=$(curl -sf --max-time 2 "$METRICS_URL"); }
# metric_of NAME: a sample's value in BODY as an integer (0 when absent), into METRIC.
metric_of() {
  local re=$'(^|\n)'"$1"' ([0-9.e+]+)'
  if [[ $BODY =~ $re ]]; then printf -v METRIC '%.0f' "${BASH_REMATCH[2]}"; else METRIC=0; fi
}

log "core: first start, to create stream $STREAM and durable $DURABLE"
start_core
wait_ready
loadgen stream-created stream-info --nats-url "$NATS_URL" --stream "$STREAM" --consumer "$DURABLE" --wait-s 30 > /dev/null
stop_proc "$CORE_PID" "clickgate core" || die "clickgate core did not stop cleanly on SIGTERM (see $RUN/core-1.log)"
CORE_PID=""

log "core: publishing the same $EVENTS events to $STREAM as a backlog"
PUB_CORE=$(loadgen publish-core replay --nats-url "$NATS_URL" --subject "$SUBJECT" --file "$EVENTS_FILE")
log "  $PUB_CORE"
[ "$(kv stored "$PUB_CORE")" = "$EVENTS" ] || die "stream $STREAM stored $(kv stored "$PUB_CORE") of $EVENTS events ($PUB_CORE)"
BACKLOG=$(loadgen backlog stream-info --nats-url "$NATS_URL" --stream "$STREAM")
CORE_MESSAGES=$(kv messages "$PUB_CORE")
[ "$(kv messages "$BACKLOG")" = "$CORE_MESSAGES" ] || die "stream $STREAM holds $(kv messages "$BACKLOG") messages before the core starts, not the $CORE_MESSAGES published"

log "core: second start; measuring the drain of $EVENTS events"
wait_quiet core
start_core
t1_us=""; c1=0; last_c=-1; now_us; last_change_us=$NOW_US; stall_us=$(( STALL_S * 1000000 ))
while :; do
  now_us
  if scrape; then
    metric_of clickgate_cluster_consumed_total; c=$METRIC
  else
    # Not listening yet (it was just started); once it moved, it must keep answering.
    [ -z "$t1_us" ] || { core_alive; die "cannot read $METRICS_URL while the core drains"; }
    c=-1
  fi
  if [ -z "$t1_us" ] && [ "$c" -gt 0 ]; then
    t1_us=$NOW_US; c1=$c
    core_t1=$(proc_ticks "$CORE_PID"); nats_t1=$(proc_ticks "$NATS_PID"); busy_t1=$(machine_busy); self_t1=$(self_ticks)
  fi
  if [ "$c" -ge "$EVENTS" ]; then
    t2_us=$NOW_US
    core_t2=$(proc_ticks "$CORE_PID"); nats_t2=$(proc_ticks "$NATS_PID"); busy_t2=$(machine_busy); self_t2=$(self_ticks)
    break
  fi
  if [ "$c" -ne "$last_c" ]; then
    last_c=$c; last_change_us=$NOW_US
  elif (( NOW_US - last_change_us > stall_us )); then
    metric_of clickgate_cluster_poison_total
    die "the core consumed nothing for ${STALL_S}s, stuck at $c of $EVENTS (poison messages: $METRIC; see $RUN/core-$CORE_RUNS.log)"
  fi
  core_alive
  nap "$POLL_S"
done
M="$RUN/metrics-drained.txt"
printf '%s\n' "$BODY" > "$M"
CORE_TIMED=$(( EVENTS - c1 ))
CORE_SECONDS=$(calc "($t2_us - $t1_us) / 1000000" '%.3f')
if [ "$CORE_TIMED" -gt 0 ] && [ "$t2_us" -gt "$t1_us" ]; then
  CORE_RATE=$(calc "$CORE_TIMED * 1000000 / ($t2_us - $t1_us)" '%.0f')
else
  die "the core took all $EVENTS events before the first poll saw it move; use more --events"
fi
CORE_CPU_US=$(calc "($core_t2 - $core_t1) * 1000000 / $CLK_TCK / $CORE_TIMED" '%.2f')
CORE_NATS_US=$(calc "($nats_t2 - $nats_t1) * 1000000 / $CLK_TCK / $CORE_TIMED" '%.2f')
# Anything else that ran meanwhile, in cores, and what this script's polls took.
CORE_OTHER=$(calc "(($busy_t2 - $busy_t1) - ($core_t2 - $core_t1) - ($nats_t2 - $nats_t1) - ($self_t2 - $self_t1)) * 1000000 / $CLK_TCK / ($t2_us - $t1_us)" '%.2f')
POLL_CORES=$(calc "($self_t2 - $self_t1) * 1000000 / $CLK_TCK / ($t2_us - $t1_us)" '%.2f')
log "  core: $CORE_TIMED events in ${CORE_SECONDS}s after the first batch ($c1): $CORE_RATE events/s"
log "  nats-server cpu per click: $CORE_NATS_US µs while the core drained, $REF_NATS_US µs while the null consumer did"

INGESTED=$(metric clickgate_core_clicks_ingested_total "$M")
DUPS=$(metric clickgate_core_click_duplicates_total "$M")
[ "$INGESTED" -eq "$EVENTS" ] || die "clickgate_core_clicks_ingested_total is $INGESTED after draining $EVENTS events (expected $EVENTS)"
[ "$DUPS" -eq 0 ] || die "clickgate_core_click_duplicates_total is $DUPS after draining $EVENTS distinct events (expected 0)"

# ---- duplicates: the same events once more ---------------------------------------------------
log "duplicates: publishing the same $EVENTS events to $STREAM again"
PUB_DUP=$(loadgen publish-duplicates replay --nats-url "$NATS_URL" --subject "$SUBJECT" --file "$EVENTS_FILE")
log "  $PUB_DUP"
DUP_STORED=$(kv stored "$PUB_DUP")
DUP_DROPPED=$(kv duplicates "$PUB_DUP")
# Whatever JetStream stored again (outside its duplicate window) the core must skip by click id.
WANT_CONSUMED=$(( EVENTS + DUP_STORED ))
last_c=-1; now_us; last_change_us=$NOW_US
while :; do
  now_us
  scrape || { core_alive; die "cannot read $METRICS_URL"; }
  metric_of clickgate_cluster_consumed_total; c=$METRIC
  [ "$c" -lt "$WANT_CONSUMED" ] || break
  if [ "$c" -ne "$last_c" ]; then
    last_c=$c; last_change_us=$NOW_US
  elif (( NOW_US - last_change_us > stall_us )); then
    die "the core stopped at $c consumed events, expected $WANT_CONSUMED after the repeated publish"
  fi
  core_alive
  nap 0.1
done
M="$RUN/metrics-final.txt"
printf '%s\n' "$BODY" > "$M"
FINAL_STATE=$(loadgen stream-final stream-info --nats-url "$NATS_URL" --stream "$STREAM")
INGESTED2=$(metric clickgate_core_clicks_ingested_total "$M")
DUPS2=$(metric clickgate_core_click_duplicates_total "$M")
[ "$INGESTED2" -eq "$EVENTS" ] || die "the repeated events were ingested again: clickgate_core_clicks_ingested_total went from $EVENTS to $INGESTED2"
[ "$DUPS2" -eq "$DUP_STORED" ] || die "clickgate_core_click_duplicates_total is $DUPS2, expected $DUP_STORED (the repeats JetStream stored)"
[ "$(kv messages "$FINAL_STATE")" = 0 ] || die "stream $STREAM still holds $(kv messages "$FINAL_STATE") messages after the core drained it"
WANT_LAST_SEQ=$(( CORE_MESSAGES + $(kv stored_messages "$PUB_DUP") ))
[ "$(kv last_seq "$FINAL_STATE")" = "$WANT_LAST_SEQ" ] || die "stream $STREAM's last sequence is $(kv last_seq "$FINAL_STATE"), expected $WANT_LAST_SEQ"
DUP_LINE="JetStream dropped $DUP_DROPPED of $EVENTS repeats ($(kv duplicate_messages "$PUB_DUP") of $(kv messages "$PUB_DUP") messages) inside its ${DUP_WINDOW_MS} ms duplicate window (the stream's last sequence stayed at $(kv last_seq "$FINAL_STATE")); the core skipped the other $DUPS2 by click id; clicks ingested stayed at $INGESTED2."
log "  $DUP_LINE"

# ---- conversions through the API -------------------------------------------------------------
# metric_of takes a regex: the label's braces are escaped.
CLICK_ID_METRIC='clickgate_conversions_attributed_total\{method="click_id"\}'
CREATED_METRIC='clickgate_api_requests_total\{outcome="created"\}'
conversion_metrics() {   # conversion_metrics PREFIX: the counters the checks need, into PREFIX_*
  scrape || { core_alive; die "cannot read $METRICS_URL"; }
  metric_of clickgate_conversion_commit_batch_len_sum; printf -v "${1}_len_sum" '%s' "$METRIC"
  metric_of clickgate_conversion_commit_batch_len_count; printf -v "${1}_commits" '%s' "$METRIC"
  metric_of "$CLICK_ID_METRIC"; printf -v "${1}_click_id" '%s' "$METRIC"
  metric_of "$CREATED_METRIC"; printf -v "${1}_created" '%s' "$METRIC"
}
log "conversions: posting $CONVERSIONS conversions to the core's API over $CONNECTIONS connections"
wait_quiet conversions
conversion_metrics cv0
core_c0=$(proc_ticks "$CORE_PID"); nats_c0=$(proc_ticks "$NATS_PID"); busy_c0=$(machine_busy); self_c0=$(self_ticks); w_c0=$EPOCHREALTIME
CONV=$(loadgen conversions conversions --api-url "http://127.0.0.1:$API_PORT" --count "$CONVERSIONS" \
  --connections "$CONNECTIONS" --events "$EVENTS_FILE" --config "$CONFIG")
core_c1=$(proc_ticks "$CORE_PID"); nats_c1=$(proc_ticks "$NATS_PID"); busy_c1=$(machine_busy); self_c1=$(self_ticks); w_c1=$EPOCHREALTIME
log "  $CONV"
core_alive
conversion_metrics cv1
printf '%s\n' "$BODY" > "$RUN/metrics-conversions.txt"
[ "$(kv acked "$CONV")" = "$CONVERSIONS" ] || die "the API acknowledged $(kv acked "$CONV") of $CONVERSIONS conversions ($CONV)"
[ $(( cv1_created - cv0_created )) -eq "$CONVERSIONS" ] \
  || die "the core counted $(( cv1_created - cv0_created )) created conversions, expected $CONVERSIONS"
[ $(( cv1_click_id - cv0_click_id )) -eq "$CONVERSIONS" ] \
  || die "$(( cv1_click_id - cv0_click_id )) of $CONVERSIONS conversions were attributed by click id (all carry a valid ingested click's id)"
CONV_COMMITS=$(( cv1_commits - cv0_commits ))
[ "$CONV_COMMITS" -gt 0 ] || die "clickgate_conversion_commit_batch_len_count did not move"
CONV_GROUP=$(calc "($cv1_len_sum - $cv0_len_sum) / $CONV_COMMITS" '%.1f')
CONV_GROUP_INT=$(calc "($cv1_len_sum - $cv0_len_sum) / $CONV_COMMITS" '%.0f')
[ "$CONV_GROUP_INT" -ge 1 ] || CONV_GROUP_INT=1
CONV_RATE=$(kv rate "$CONV")
CONV_SECONDS=$(kv seconds "$CONV")
CONV_CORE_US=$(calc "($core_c1 - $core_c0) * 1000000 / $CLK_TCK / $CONVERSIONS" '%.1f')
CONV_LOADGEN_US=$(calc "$(kv cpu_ticks "$CONV") * 1000000 / $CLK_TCK / $CONVERSIONS" '%.1f')
# Anything else that ran meanwhile, in cores (the load generator is a reaped child by now).
CONV_OTHER=$(calc "(($busy_c1 - $busy_c0) - ($core_c1 - $core_c0) - ($nats_c1 - $nats_c0) - ($self_c1 - $self_c0)) / $CLK_TCK / ($w_c1 - $w_c0)" '%.2f')
log "  $CONVERSIONS conversions in ${CONV_SECONDS}s: $CONV_RATE/s, $CONV_COMMITS grouped commits of $CONV_GROUP on average"

log "conversions reference: plain SQLite, $CONVERSIONS rows, $CONV_GROUP_INT a commit"
wait_quiet sqlite-reference
SQL_REF=$(loadgen sqlite-reference sqlite-reference --dir "$SCRATCH/sqlite-reference" --rows "$CONVERSIONS" --rows-per-commit "$CONV_GROUP_INT")
log "  $SQL_REF"
SQL_REF_RATE=$(kv rate "$SQL_REF")

stop_proc "$CORE_PID" "clickgate core" || die "clickgate core did not stop cleanly on SIGTERM (see $RUN/core-$CORE_RUNS.log)"
CORE_PID=""
log "conversions: clickgate ledger verify on the core's store"
"$BIN" --config "$CONFIG" --data-dir "$SCRATCH/core-data" ledger verify > "$RUN/ledger-verify.txt" 2>&1 \
  || die "clickgate ledger verify failed after the conversions: $(head -n 5 "$RUN/ledger-verify.txt")"
VERIFY_LINE=$(grep -m1 '^ledger clean' "$RUN/ledger-verify.txt") || die "clickgate ledger verify printed no 'ledger clean' line (see $RUN/ledger-verify.txt)"
log "  $VERIFY_LINE"
# Every conversion earns at least its base commission (no cap binds in the config), and each
# commission is reserved by one pending transfer: fewer transfers means skipped work.
LEDGER_TRANSFERS=$(printf '%s\n' "$VERIFY_LINE" | awk '{ print $3 }')
[ "$LEDGER_TRANSFERS" -ge "$CONVERSIONS" ] \
  || die "the ledger holds $LEDGER_TRANSFERS transfers for $CONVERSIONS conversions; expected at least one commission reserve each"

# ---- summary ---------------------------------------------------------------------------------
RATIO=$(calc "$CORE_RATE / $REF_RATE" '%.2f')
# The final line, built here only: later parts add their figures to FINAL_FIELDS.
CONV_RATIO=$(calc "$CONV_RATE / $SQL_REF_RATE" '%.3f')
FINAL_FIELDS=("ingest_events_per_s=$CORE_RATE" "conversions_per_s=$CONV_RATE" "nats_cpu_us_per_click=$CORE_NATS_US" "reference_events_per_s=$REF_RATE")
FINAL="core ${FINAL_FIELDS[*]}"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock config loadtest/loadgen.rs loadtest/loadgen 2>/dev/null || commit="$commit+dirty"
{
  echo "# Core load test, $STAMP"
  echo
  echo "clickgate $commit, nats-server $NATS_VERSION (JetStream, file storage, one server on loopback);"
  echo "$EVENTS events per phase, $(( $(kv bytes "$NULL") / EVENTS )) bytes each on average; $(nproc --all) cpus, kernel $(uname -r), unpinned."
  echo "Publishing (clickgate-loadgen, $(kv published "$PUB_REF") events in $(kv messages "$PUB_REF") messages of up to $(kv batch "$PUB_REF") events, 256 acks in flight): $(kv rate "$PUB_REF") events/s to the reference stream, $(kv rate "$PUB_CORE") to the core's."
  echo
  echo "| consumer | events timed | seconds | events/s | consumer cpu µs/event | nats-server cpu µs/event | other cpu cores |"
  echo "|---|---|---|---|---|---|---|"
  echo "| reference: null consumer (count and ack only, fetch $(kv batch "$NULL") messages) | $REF_TIMED | $REF_SECONDS | $REF_RATE | $REF_CPU_US | $REF_NATS_US | $REF_OTHER |"
  echo "| clickgate core (decode, append + fdatasync, index, ack) | $CORE_TIMED | $CORE_SECONDS | $CORE_RATE | $CORE_CPU_US | $CORE_NATS_US | $CORE_OTHER |"
  echo
  echo "Load average at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg). \"other cpu cores\" is the"
  echo "machine's busy time minus the consumer's, nats-server's and this script's (its curl polls used $POLL_CORES cores during the drain)."
  echo
  echo "Ratio core / reference: $RATIO. Both are timed from the first batch's acks to the last"
  echo "(the core: first movement of clickgate_cluster_consumed_total to $EVENTS, polled every ${POLL_S}s)."
  echo
  echo "Checks: clickgate_core_clicks_ingested_total = $INGESTED, clickgate_core_click_duplicates_total = $DUPS after the drain."
  echo "$DUP_LINE"
  echo
  echo "## Conversions through the API"
  echo
  echo "$CONVERSIONS conversions posted by clickgate-loadgen over $CONNECTIONS keep-alive HTTP/1.1 connections to the same core,"
  echo "each with the click id of a valid click it had ingested (attribution, commissions and ledger transfers per conversion);"
  echo "$CONV_COMMITS grouped commits of $CONV_GROUP conversions on average (api.commit_batch_len_max 256), one fsync each."
  echo
  echo "| writer | rows or conversions | seconds | per second | core cpu µs/conversion | loadgen cpu µs/conversion | other cpu cores |"
  echo "|---|---|---|---|---|---|---|"
  echo "| reference: plain SQLite, one row per conversion, $CONV_GROUP_INT rows a commit, WAL, synchronous=FULL | $(kv rows "$SQL_REF") | $(kv seconds "$SQL_REF") | $SQL_REF_RATE | | | |"
  echo "| clickgate core: POST /v1/conversions, $CONNECTIONS connections | $(kv acked "$CONV") | $CONV_SECONDS | $CONV_RATE | $CONV_CORE_US | $CONV_LOADGEN_US | $CONV_OTHER |"
  echo
  echo "Ratio core / reference: $CONV_RATIO. Latency per conversion: p50 $(kv p50_ms "$CONV") ms, p99 $(kv p99_ms "$CONV") ms."
  echo "Checks: $CONVERSIONS answered 201, clickgate_api_requests_total{outcome=\"created\"} and"
  echo "clickgate_conversions_attributed_total{method=\"click_id\"} rose by $CONVERSIONS each; clickgate ledger verify: $VERIFY_LINE"
  if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    echo "Notes:"
    printf -- '- %s\n' "${NOTES[@]}"
  fi
  echo
  echo "$FINAL"
} > "$RUN/summary.md"
cat "$RUN/summary.md"
