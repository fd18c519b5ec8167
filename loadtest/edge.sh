#!/usr/bin/env bash
# Edge load test: clickgate's `GET /r/{code}` against an nginx `return 302` reference, side by
# side in one run (PRODUCT.md §10, "Edge throughput" and "Edge latency").
#
# Both servers run for the whole run, pinned to cpu 0; wrk (1 thread, keep-alive, --latency,
# loadtest/mix.lua) is pinned to cpu 1. Rounds alternate A B B A ... (A = nginx, B = clickgate).
# Per round: requests/s, p50/p99, server CPU per request (from /proc/<pid>/stat) and CPU used by
# anything else (from /proc/stat; a round where that exceeds 0.25 cores is redone, at most 3
# times). Checks: no non-3xx answers and no socket errors for either server; clickgate's click
# counters match wrk's request count within +-connections; no click event dropped.
#
# Usage: loadtest/edge.sh [options]          (runnable from any directory)
#   --rounds N          rounds per server (default 5)
#   --duration S        seconds per round (default 10)
#   --connections N     wrk connections (default 64)
#   --quick             smoke run: 2 rounds each of 3 s (explicit --rounds/--duration win)
#   --unpinned          no taskset: servers and wrk float over all cpus
#   --no-half-load      skip the constant-rate rounds (by default, after the main rounds, both
#                       servers get the same mix at half clickgate's median rps, open-loop, from
#                       `clickgate-loadgen edge-rate`, in the same pinning and A B B A order)
#   --keep              keep the scratch data too (clickgate data dir, nginx temp dirs)
#   --seed N            client-pool seed (default 42)
#   --no-build          never run cargo, even if the binary looks older than the sources
#   --quiet-wait S      before each round, wait up to S seconds (default 60) for other processes
#                       to use at most 0.25 cores; the round then runs (and is checked) anyway
#   -h, --help          this text
#
# Output: a Markdown table (one row per round), medians per server and, as the last line,
#   ratio rps=<cg/nginx> cpu_per_req=<nginx/cg> p99_ms=<cg p99> nginx_p99_ms=<nginx p99>
#     half_rps=<offered> half_p99_ms=<cg p99> nginx_half_p99_ms=<nginx p99>
#   (p99 at half load is measured from each request's scheduled send: no coordinated omission)
# Everything (wrk outputs, server logs, metrics, summary.md) is in loadtest/out/<timestamp>/.
# Exit status: 0 when every check passed, 1 when a check failed, 2 on a usage error.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true   # '&' in a replacement stays literal
export LC_ALL=C                                    # '.' as decimal point in $EPOCHREALTIME and awk

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
# clickgate resolves the paths in its config (geoip/, config/bots/) from the working directory.
cd "$ROOT"

# ---- options ---------------------------------------------------------------------------------
ROUNDS=5
DURATION=10
CONNECTIONS=64
WARMUP=3
PINNED=1
QUICK=0
HALF=1
KEEP=0
BUILD=1
POOL_SEED=42
OTHER_MAX=0.25      # cores used by anything but the servers and wrk before a round is redone
QUIET_WAIT=60
RETRIES_MAX=3
rounds_set=0
duration_set=0

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
usage_error() { printf 'edge.sh: %s\n(see --help)\n' "$*" >&2; exit 2; }
need_int() { [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 needs a positive integer, got '${2:-}'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) need_int "$1" "${2:-}"; ROUNDS=$2; rounds_set=1; shift 2 ;;
    --duration) need_int "$1" "${2:-}"; DURATION=$2; duration_set=1; shift 2 ;;
    --connections) need_int "$1" "${2:-}"; CONNECTIONS=$2; shift 2 ;;
    --seed) need_int "$1" "${2:-}"; POOL_SEED=$2; shift 2 ;;
    --quiet-wait) [[ "${2:-}" =~ ^[0-9]+$ ]] || usage_error "--quiet-wait needs a number of seconds"; QUIET_WAIT=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --unpinned) PINNED=0; shift ;;
    --no-half-load) HALF=0; shift ;;
    --keep) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
if [ "$QUICK" -eq 1 ]; then
  [ "$rounds_set" -eq 1 ] || ROUNDS=2
  [ "$duration_set" -eq 1 ] || DURATION=3
  WARMUP=1
fi

# ---- helpers ---------------------------------------------------------------------------------
log() { printf '[edge %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'edge.sh: FAIL: %s\n' "$*" >&2; exit 1; }
# Float arithmetic: calc 'expression' -> printf'd with FMT (default %.6f).
calc() { awk "BEGIN { printf \"${2:-%.6f}\", ($1) }"; }

CLK_TCK=$(getconf CLK_TCK)

# Busy ticks of the whole machine: user+nice+system+irq+softirq+steal (idle and iowait excluded),
# then the parts: "busy user+nice system irq+softirq steal".
machine_stat() {
  local _cpu u n s i w irq sirq st _rest
  read -r _cpu u n s i w irq sirq st _rest < /proc/stat
  echo "$(( u + n + s + irq + sirq + ${st:-0} )) $(( u + n )) $s $(( irq + sirq )) ${st:-0}"
}
machine_busy() { local a; a=$(machine_stat); echo "${a%% *}"; }

# utime+stime of one process (all its threads), in clock ticks; 0 if it is gone.
proc_ticks() {
  local s f
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  read -r -a f <<< "$s"
  echo $(( f[11] + f[12] ))
}

# nginx: master plus its workers.
nginx_ticks() {
  local total pid
  total=$(proc_ticks "$NG_PID")
  for pid in $(cat "/proc/$NG_PID/task/$NG_PID/children" 2>/dev/null); do
    total=$(( total + $(proc_ticks "$pid") ))
  done
  echo "$total"
}

. "$HERE/lib.sh"

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
ensure_apt wrk wrk
ensure_apt nginx nginx-light
ensure_apt curl curl
ensure_apt taskset util-linux
ensure_apt ss iproute2
if ! command -v python3 >/dev/null 2>&1 && ! command -v jq >/dev/null 2>&1; then
  ensure_apt jq jq
fi
if [ "$PINNED" -eq 1 ]; then
  [ "$(nproc --all)" -ge 2 ] || die "pinning needs at least 2 cpus (this machine has $(nproc --all)); use --unpinned"
  PIN0=(taskset -c 0)
  PIN1=(taskset -c 1)
else
  PIN0=()
  PIN1=()
fi

# ---- data and binary -------------------------------------------------------------------------
log "fetching GeoIP databases and user-agent lists (idempotent)"
geoip/fetch.sh >&2 || die "geoip/fetch.sh failed"
config/bots/fetch.sh >&2 || die "config/bots/fetch.sh failed"

BIN="target/release/clickgate"
if [ ! -x "$BIN" ]; then
  log "$BIN missing; building it (cargo waits if another build holds the lock)"
  cargo build --release --bin clickgate >&2 || die "cargo build --release --bin clickgate failed"
elif [ "$BUILD" -eq 1 ] && [ -n "$(find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)" ]; then
  log "$BIN is older than the sources; rebuilding it (--no-build skips this)"
  cargo build --release --bin clickgate >&2 || die "cargo build --release --bin clickgate failed"
fi
[ -x "$BIN" ] || die "$BIN was not built"
LOADGEN="target/release/clickgate-loadgen"
if [ "$HALF" -eq 1 ]; then
  if [ "$BUILD" -eq 1 ] && { [ ! -x "$LOADGEN" ] || [ -n "$(find src loadtest/loadgen.rs loadtest/loadgen Cargo.toml Cargo.lock -newer "$LOADGEN" -print -quit 2>/dev/null)" ]; }; then
    log "building $LOADGEN for the half-load rounds"
    cargo build --release --bin clickgate-loadgen >&2 || die "cargo build --release --bin clickgate-loadgen failed"
  fi
  [ -x "$LOADGEN" ] || die "$LOADGEN was not built (--no-half-load skips the rounds that need it)"
fi

# ---- run dir ---------------------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="loadtest/out/$STAMP"
[ ! -e "$RUN" ] || RUN="$RUN-$$"
mkdir -p "$RUN"
SCRATCH="$RUN/scratch"
mkdir -p "$SCRATCH/clickgate-data" "$SCRATCH/nginx/tmp"
RUN_ABS="$ROOT/$RUN"
log "run dir: $RUN"

CG_PID=""
NG_PID=""
WRK_PID=""
LAST_CG_METRICS=""
# Stops one of our servers (a child of this shell): SIGTERM, up to 10 s, then SIGKILL.
stop_server() {
  local pid=$1 name=$2 rc=0 t0 ms
  [ -n "$pid" ] || return 0
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || rc=$?
    log "$name had already exited (status $rc)"
    return 0
  fi
  t0=$EPOCHREALTIME
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "$name did not stop within 10 s of SIGTERM; killed it"
    return 0
  fi
  wait "$pid" 2>/dev/null || rc=$?
  ms=$(calc "($EPOCHREALTIME - $t0) * 1000" '%.0f')
  log "$name stopped on SIGTERM within ~$ms ms, exit status $rc"
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$WRK_PID" ] && kill -0 "$WRK_PID" 2>/dev/null; then
    kill -TERM "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" 2>/dev/null || true
  fi
  stop_server "$CG_PID" clickgate
  stop_server "$NG_PID" nginx
  if [ "$KEEP" -eq 0 ] && [ -d "$SCRATCH" ]; then rm -rf -- "$SCRATCH"; fi
  log "results in $RUN"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- user agents for the mix -----------------------------------------------------------------
BROWSERS_FILE="$ROOT/config/bots/browser-user-agents.txt"
BOTS_FILE="$RUN_ABS/bot-user-agents.txt"
# About 20 real crawler user agents: for each well-known crawler, the first example instance of
# its pattern that names it; filled up from evenly spaced entries of the list.
extract_bots() {
  local json=config/bots/crawler-user-agents.json
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$json" <<'PY'
import json, sys
entries = [e for e in json.load(open(sys.argv[1], encoding="utf-8")) if e.get("instances")]
ok = lambda s: s and all(32 <= ord(c) <= 126 for c in s)
names = ["Googlebot", "bingbot", "Baiduspider", "DuckDuckBot", "Applebot", "facebookexternalhit",
         "Twitterbot", "MJ12bot", "PetalBot", "GPTBot", "Bytespider", "DotBot", "Slurp", "Sogou",
         "ia_archiver", "LinkedInBot", "Amazonbot", "YandexBot", "AhrefsBot", "SemrushBot"]
out = []
for n in names:
    for e in entries:
        if n.lower() in e["pattern"].lower():
            cands = [i for i in e["instances"] if ok(i) and n.lower() in i.lower()] or [i for i in e["instances"] if ok(i)]
            if cands and cands[0] not in out:
                out.append(cands[0])
            break
step = max(1, len(entries) // 20)
for e in entries[::step]:
    if len(out) >= 20:
        break
    cands = [i for i in e["instances"] if ok(i)]
    if cands and cands[0] not in out:
        out.append(cands[0])
print("\n".join(out[:20]))
PY
  else
    jq -r '[.[] | select((.instances | length) > 0) | .instances[0]
            | select(test("^[ -~]+$"))] | . as $a | [range(0; length; (length / 20 | floor))] | map($a[.]) | .[:20][]' "$json"
  fi
}
extract_bots > "$BOTS_FILE"
[ "$(wc -l < "$BOTS_FILE")" -ge 10 ] || die "could not extract crawler user agents from config/bots/crawler-user-agents.json"
log "mix: $(wc -l < "$BOTS_FILE") crawler user agents, $(wc -l < "$BROWSERS_FILE") browser user agents"

# ---- clickgate -------------------------------------------------------------------------------
free_port CG_PORT
free_port CG_ADMIN
free_port NG_PORT
CG_URL="http://127.0.0.1:$CG_PORT"
NG_URL="http://127.0.0.1:$NG_PORT"
METRICS_URL="http://127.0.0.1:$CG_ADMIN/metrics"

log "starting clickgate on 127.0.0.1:$CG_PORT (admin $CG_ADMIN)"
"${PIN0[@]}" "$BIN" --config config/loadtest.toml --data-dir "$SCRATCH/clickgate-data" serve \
  --edge-listen "127.0.0.1:$CG_PORT" --admin-listen "127.0.0.1:$CG_ADMIN" \
  > "$RUN/clickgate.stdout.log" 2> "$RUN/clickgate.log" &
CG_PID=$!
cg_alive() {
  kill -0 "$CG_PID" 2>/dev/null && return 0
  local rc=0
  wait "$CG_PID" 2>/dev/null || rc=$?
  CG_PID=""
  die "clickgate exited (status $rc). Last lines of $RUN/clickgate.log:
$(tail -n 30 "$RUN/clickgate.log")"
}
ready=0
for _ in $(seq 300); do
  cg_alive
  if curl -sf --max-time 1 "http://127.0.0.1:$CG_ADMIN/readyz" > /dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" -eq 1 ] || die "clickgate did not become ready within 30 s (see $RUN/clickgate.log)"

# One real redirect, to size nginx's answer like ours.
PROBE_UA=$(head -n 1 "$BROWSERS_FILE")
curl -s --max-time 5 -o /dev/null -D "$RUN/probe-clickgate.headers" \
  -H "X-Forwarded-For: 81.2.69.160" -H "User-Agent: $PROBE_UA" "$CG_URL/r/lt00" \
  || die "probe request to clickgate failed"
header_value() {  # header_value FILE NAME -> value without CR
  awk -v n="$(printf '%s' "$2" | tr 'A-Z' 'a-z')" 'BEGIN { FS = ": " }
    { sub(/\r$/, "") } tolower($1) == n { sub(/^[^:]*: /, ""); print; exit }' "$1"
}
probe_status=$(awk 'NR == 1 { print $2 }' "$RUN/probe-clickgate.headers")
[ "$probe_status" = "302" ] || die "clickgate answered the probe with $probe_status, not 302 (see $RUN/probe-clickgate.headers)"
CG_LOCATION=$(header_value "$RUN/probe-clickgate.headers" location)
CG_SET_COOKIE=$(header_value "$RUN/probe-clickgate.headers" set-cookie)
[ -n "$CG_LOCATION" ] || die "clickgate's probe redirect has no Location"
[ -n "$CG_SET_COOKIE" ] || die "clickgate's probe redirect (no cookie sent) has no Set-Cookie"
case "$CG_LOCATION$CG_SET_COOKIE" in
  *'"'*|*'$'*|*'\'*|*';;'*) die "unexpected characters in clickgate's Location/Set-Cookie; cannot template nginx" ;;
esac
# nginx's Location: the same URL up to "cgid=", then a fixed fake click id of the same length.
loc_prefix="${CG_LOCATION%%cgid=*}cgid="
if [ "$loc_prefix" = "${CG_LOCATION}cgid=" ]; then loc_prefix="${CG_LOCATION:0:$(( ${#CG_LOCATION} / 2 ))}"; fi
NG_LOCATION="$loc_prefix"
while [ "${#NG_LOCATION}" -lt "${#CG_LOCATION}" ]; do NG_LOCATION="${NG_LOCATION}nginx-reference-"; done
NG_LOCATION="${NG_LOCATION:0:${#CG_LOCATION}}"
# nginx's Set-Cookie: clickgate's, with the visitor id replaced by a fixed one of the same length.
sc_name="${CG_SET_COOKIE%%=*}"
sc_rest="${CG_SET_COOKIE#*=}"
sc_vid="${sc_rest%%;*}"
sc_attrs="${sc_rest:${#sc_vid}}"
sc_fake="NginxReferenceVisitorIdNginxReferenceVisitorId"
while [ "${#sc_fake}" -lt "${#sc_vid}" ]; do sc_fake="$sc_fake$sc_fake"; done
NG_SET_COOKIE="$sc_name=${sc_fake:0:${#sc_vid}}$sc_attrs"
log "clickgate Location is ${#CG_LOCATION} chars, Set-Cookie ${#CG_SET_COOKIE} chars"

# ---- nginx -----------------------------------------------------------------------------------
NG_DIR="$RUN_ABS/nginx"
mkdir -p "$NG_DIR"
conf=$(< "$HERE/nginx.conf.template")
conf=${conf//@RUN_NGINX@/"$NG_DIR"}
conf=${conf//@NGINX_TMP@/"$ROOT/$SCRATCH/nginx/tmp"}
conf=${conf//@LISTEN@/"127.0.0.1:$NG_PORT"}
conf=${conf//@LOCATION@/"$NG_LOCATION"}
conf=${conf//@SET_COOKIE@/"$NG_SET_COOKIE"}
printf '%s\n' "$conf" > "$NG_DIR/nginx.conf"
nginx -t -q -p "$NG_DIR/" -c "$NG_DIR/nginx.conf" -e "$NG_DIR/error.log" 2> "$NG_DIR/config-test.log" \
  || die "nginx rejected $NG_DIR/nginx.conf: $(cat "$NG_DIR/config-test.log")"
log "starting nginx on 127.0.0.1:$NG_PORT"
"${PIN0[@]}" nginx -p "$NG_DIR/" -c "$NG_DIR/nginx.conf" -e "$NG_DIR/error.log" \
  > "$NG_DIR/stdout.log" 2> "$NG_DIR/stderr.log" &
NG_PID=$!
ng_alive() {
  kill -0 "$NG_PID" 2>/dev/null && return 0
  local rc=0
  wait "$NG_PID" 2>/dev/null || rc=$?
  NG_PID=""
  die "nginx exited (status $rc): $(tail -n 20 "$NG_DIR/error.log" "$NG_DIR/stderr.log" 2>/dev/null)"
}
ready=0
for _ in $(seq 100); do
  ng_alive
  code=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "$NG_URL/r/lt00" 2>/dev/null || true)
  if [ "$code" = "302" ]; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" -eq 1 ] || die "nginx did not answer 302 within 10 s (see $NG_DIR/error.log)"

# Both answers side by side, with and without a visitor cookie.
COOKIE_PROBE="cg_vid=AAAAAAAAAAAAAAAAAAAAAk"
for srv in clickgate nginx; do
  url=$CG_URL; [ "$srv" = nginx ] && url=$NG_URL
  curl -s --max-time 5 -D "$RUN/probe-$srv.headers" -o "$RUN/probe-$srv.body" \
    -H "X-Forwarded-For: 81.2.69.161" -H "User-Agent: $PROBE_UA" "$url/r/lt00"
  curl -s --max-time 5 -D "$RUN/probe-$srv-cookie.headers" -o /dev/null \
    -H "X-Forwarded-For: 81.2.69.162" -H "User-Agent: $PROBE_UA" -H "Cookie: $COOKIE_PROBE" "$url/r/lt00"
done
ng_loc=$(header_value "$RUN/probe-nginx.headers" location)
ng_sc=$(header_value "$RUN/probe-nginx.headers" set-cookie)
[ "${#ng_loc}" -eq "${#CG_LOCATION}" ] || die "nginx Location is ${#ng_loc} chars, clickgate's ${#CG_LOCATION}"
[ "${#ng_sc}" -eq "${#CG_SET_COOKIE}" ] || die "nginx Set-Cookie is ${#ng_sc} chars, clickgate's ${#CG_SET_COOKIE}"
for srv in clickgate nginx; do
  if [ -n "$(header_value "$RUN/probe-$srv-cookie.headers" set-cookie)" ]; then
    die "$srv sent Set-Cookie to a request that carried a cg_vid cookie (see $RUN/probe-$srv-cookie.headers)"
  fi
done
hdr_bytes() { wc -c < "$1" | tr -d ' '; }
log "probe answer sizes (headers+body, no cookie sent): clickgate $(( $(hdr_bytes "$RUN/probe-clickgate.headers") + $(hdr_bytes "$RUN/probe-clickgate.body") )) B, nginx $(( $(hdr_bytes "$RUN/probe-nginx.headers") + $(hdr_bytes "$RUN/probe-nginx.body") )) B"

# ---- metrics ---------------------------------------------------------------------------------
scrape() {  # scrape FILE
  curl -sf --max-time 10 "$METRICS_URL" > "$1" || die "could not read clickgate metrics from $METRICS_URL"
}
# Everything that reached the edge: clicks (all verdicts, 429s included) plus other outcomes.
edge_total() {
  awk '/^clickgate_clicks_total\{/ || /^clickgate_edge_requests_total\{/ { s += $NF } END { printf "%.0f\n", s }' "$1"
}
metric_value() {  # metric_value FILE 'exact series name' -> value (0 if absent)
  awk -v k="$2" '$1 == k { v = $NF } END { printf "%.0f\n", v + 0 }' "$1"
}
dropped() { metric_value "$1" clickgate_click_events_dropped_total; }

FAILURES=()
fail_check() { FAILURES+=("$*"); log "CHECK FAILED: $*"; }

# ---- one wrk run -----------------------------------------------------------------------------
# run_round SERVER LABEL DURATION REQ_SEED: runs wrk once against SERVER and sets R_* results.
ROUND_TSV="$RUN/rounds.tsv"
printf 'kind\tserver\tlabel\tattempt\trps\tp50_ms\tp99_ms\tcpu_us_per_req\tother_cores\tserver_cores\twrk_cores\twrk_requests\tcg_counted\tcg_minus_wrk\tbytes_per_resp\tnon3xx\tsocket_errors\tbusy_cores\tuser_cores\tsystem_cores\tirq_softirq_cores\tsteal_cores\tother_server_cores\twall_s\tcg_rss_mib\n' > "$ROUND_TSV"
COUNTS_TSV="$RUN/counter-checks.tsv"
printf 'label\twrk_requests\tclickgate_counted\tdifference\tallowed\tok\n' > "$COUNTS_TSV"

latency_ms() {  # latency_ms WRK_OUTPUT PERCENT -> ms from the --latency distribution
  awk -v p="$2%" '
    /Latency Distribution/ { on = 1; next }
    on && $1 == p {
      v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
      f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
      if (f < 0) exit 1
      printf "%.3f\n", v * f; found = 1; exit
    }
    END { if (!found) exit 1 }' "$1"
}

run_round() {
  local server=$1 label=$2 dur=$3 req_seed=$4 kind=${5:-round} attempt=${6:-0}
  local url base busy0 busy1 usr0 usr1 sys0 sys1 irq0 irq1 st0 st1 cg0 cg1 ng0 ng1 t0 t1 rc=0 wrapstat wrk_ticks
  url=$CG_URL; [ "$server" = nginx ] && url=$NG_URL
  base="$RUN/$label"
  cg_alive; ng_alive
  if [ "$server" = clickgate ]; then scrape "$base.metrics-before.txt"; fi
  read -r busy0 usr0 sys0 irq0 st0 <<< "$(machine_stat)"; cg0=$(proc_ticks "$CG_PID"); ng0=$(nginx_ticks); t0=$EPOCHREALTIME
  OUT="$base.wrk.txt" ERR="$base.wrk.err" STATF="$base.wrapper-stat" bash -c '
      "$@" > "$OUT" 2> "$ERR"; rc=$?
      read -r s < /proc/$$/stat; printf "%s\n" "$s" > "$STATF"; exit $rc' wrk-wrapper \
    "${PIN1[@]}" wrk -t1 -c"$CONNECTIONS" -d"${dur}s" --timeout 2s --latency \
      -s "$HERE/mix.lua" "$url" -- "$POOL_SEED" "$req_seed" "$BROWSERS_FILE" "$BOTS_FILE" &
  WRK_PID=$!
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  t1=$EPOCHREALTIME; read -r busy1 usr1 sys1 irq1 st1 <<< "$(machine_stat)"; cg1=$(proc_ticks "$CG_PID"); ng1=$(nginx_ticks)
  [ "$rc" -eq 0 ] || die "wrk failed (status $rc) in $label: $(cat "$base.wrk.err" "$base.wrk.txt" | tail -n 20)"
  cg_alive; ng_alive
  # The wrapper's own CPU plus that of its reaped child (wrk).
  wrapstat=$(< "$base.wrapper-stat"); wrapstat=${wrapstat##*) }
  read -r -a wf <<< "$wrapstat"
  wrk_ticks=$(( wf[11] + wf[12] + wf[13] + wf[14] ))

  local w="$base.wrk.txt" summary
  summary=$(grep '^summary: ' "$w" || true)
  [ -n "$summary" ] || die "no summary line from mix.lua in $w: $(cat "$base.wrk.err" | tail -n 5)"
  kv() { printf '%s\n' "$summary" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
  R_REQUESTS=$(kv requests)
  local bytes non3xx sock connect rd wr timeout
  bytes=$(kv bytes); connect=$(kv connect); rd=$(kv read); wr=$(kv write); timeout=$(kv timeout)
  non3xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$w")
  non3xx=${non3xx:-0}
  sock=$(( connect + rd + wr + timeout ))
  R_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$w")
  [ -n "$R_RPS" ] || die "no Requests/sec line in $w"
  R_P50=$(latency_ms "$w" 50) || die "no 50% latency line in $w"
  R_P99=$(latency_ms "$w" 99) || die "no 99% latency line in $w"
  local wall srv_ticks idle_ticks
  wall=$(calc "$t1 - $t0")
  if [ "$server" = clickgate ]; then srv_ticks=$(( cg1 - cg0 )); idle_ticks=$(( ng1 - ng0 ));
  else srv_ticks=$(( ng1 - ng0 )); idle_ticks=$(( cg1 - cg0 )); fi
  cores() { calc "$1 / $CLK_TCK / $wall" '%.3f'; }
  R_CPU_US=$(calc "$srv_ticks * 1000000 / $CLK_TCK / ($R_REQUESTS > 0 ? $R_REQUESTS : 1)" '%.2f')
  R_OTHER=$(calc "(($busy1 - $busy0) - ($cg1 - $cg0) - ($ng1 - $ng0) - $wrk_ticks) / $CLK_TCK / $wall" '%.3f')
  R_SRV_CORES=$(calc "$srv_ticks / $CLK_TCK / $wall" '%.2f')
  R_WRK_CORES=$(calc "$wrk_ticks / $CLK_TCK / $wall" '%.2f')
  R_BYTES=$(calc "$bytes / ($R_REQUESTS > 0 ? $R_REQUESTS : 1)" '%.0f')

  # Checks.
  if [ "$non3xx" != 0 ]; then
    fail_check "$label ($server): $non3xx non-2xx/3xx answers (wrk: 'Non-2xx or 3xx responses'), see $w"
  fi
  if [ "$sock" -ne 0 ]; then
    fail_check "$label ($server): socket errors connect=$connect read=$rd write=$wr timeout=$timeout, see $w"
  fi
  if [ "$R_REQUESTS" -le 0 ]; then fail_check "$label ($server): wrk completed no request"; fi
  R_COUNTED="-"; R_DIFF="-"
  if [ "$server" = clickgate ]; then
    sleep 0.3   # let requests that were in flight when wrk stopped finish on the server
    scrape "$base.metrics-after.txt"
    LAST_CG_METRICS="$base.metrics-after.txt"
    local before after d
    before=$(edge_total "$base.metrics-before.txt"); after=$(edge_total "$base.metrics-after.txt")
    R_COUNTED=$(( after - before ))
    R_DIFF=$(( R_COUNTED - R_REQUESTS ))
    local ok=yes
    if [ "${R_DIFF#-}" -gt "$CONNECTIONS" ]; then
      ok=no
      fail_check "$label: clickgate counted $R_COUNTED requests (clicks_total + edge_requests_total), wrk completed $R_REQUESTS: difference $R_DIFF is beyond +-$CONNECTIONS"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$R_REQUESTS" "$R_COUNTED" "$R_DIFF" "$CONNECTIONS" "$ok" >> "$COUNTS_TSV"
    log "  counters: wrk completed $R_REQUESTS, clickgate counted $R_COUNTED (difference $R_DIFF, allowed +-$CONNECTIONS)"
    d=$(dropped "$base.metrics-after.txt")
    if [ "$d" != 0 ]; then fail_check "$label: clickgate_click_events_dropped_total is $d (must stay 0)"; fi
  fi
  CG_RSS=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$CG_PID/status" 2>/dev/null || echo "?")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$kind" "$server" "$label" "$attempt" \
    "$R_RPS" "$R_P50" "$R_P99" "$R_CPU_US" "$R_OTHER" "$R_SRV_CORES" "$R_WRK_CORES" "$R_REQUESTS" \
    "$R_COUNTED" "$R_DIFF" "$R_BYTES" "$non3xx" "$sock" "$(cores $(( busy1 - busy0 )))" \
    "$(cores $(( usr1 - usr0 )))" "$(cores $(( sys1 - sys0 )))" "$(cores $(( irq1 - irq0 )))" \
    "$(cores $(( st1 - st0 )))" "$(cores "$idle_ticks")" "$(calc "$wall" '%.3f')" "$CG_RSS" >> "$ROUND_TSV"
  log "  $server: $R_RPS req/s, p50 $R_P50 ms, p99 $R_P99 ms, $R_CPU_US us/req, server $R_SRV_CORES cores, wrk $R_WRK_CORES cores, other $R_OTHER cores"
}

# "pid ticks name" for every process.
all_proc_ticks() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk '{
    line = $0; pid = $1
    name = line; sub(/^[^(]*\(/, "", name); sub(/\)[^)]*$/, "", name); gsub(/ /, "_", name)
    rest = line; sub(/^.*\) /, "", rest); split(rest, f, " ")
    print pid, f[12] + f[13], name }'
}
# The 3 processes that used the most CPU over 1 s, ours left out: "name(cores) ...".
top_consumers() {
  local a b
  a=$(all_proc_ticks); sleep 1; b=$(all_proc_ticks)
  awk -v tck="$CLK_TCK" -v ours=" $$ $CG_PID $NG_PID $(cat "/proc/$NG_PID/task/$NG_PID/children" 2>/dev/null) " '
    NR == FNR { t[$1] = $2; next }
    ($1 in t) && index(ours, " " $1 " ") == 0 { d = $2 - t[$1]; if (d > 0) printf "%d %s(%.2f)\n", d, $3, d / tck }' \
    <(printf '%s\n' "$a") <(printf '%s\n' "$b") | sort -n -r | head -n 3 | cut -d' ' -f2 | tr '\n' ' '
}

# wait_quiet LABEL: waits up to QUIET_WAIT s until processes other than ours use at most
# OTHER_MAX cores (sampled over 1 s while no load runs).
wait_quiet() {
  local start=$EPOCHREALTIME b0 b1 c0 c1 n0 n1 t0 t1 other said=0
  while :; do
    b0=$(machine_busy); c0=$(proc_ticks "$CG_PID"); n0=$(nginx_ticks); t0=$EPOCHREALTIME
    sleep 1
    b1=$(machine_busy); c1=$(proc_ticks "$CG_PID"); n1=$(nginx_ticks); t1=$EPOCHREALTIME
    other=$(calc "(($b1 - $b0) - ($c1 - $c0) - ($n1 - $n0)) / $CLK_TCK / ($t1 - $t0)" '%.2f')
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
      log "  machine busy ($other cores used by other processes; top: $(top_consumers)); waiting up to ${QUIET_WAIT}s"
      said=1
    fi
  done
}

# ---- warm-up ---------------------------------------------------------------------------------
log "warm-up: ${WARMUP}s each (not in the table; checks apply)"
run_round nginx warmup-nginx "$WARMUP" 1 warmup
run_round clickgate warmup-clickgate "$WARMUP" 2 warmup

# Per-thread CPU of clickgate ("tid ticks name" lines), to see where its CPU goes.
cg_threads() {
  local t s f name
  for t in /proc/"$CG_PID"/task/*; do
    s=$(cat "$t/stat" 2>/dev/null) || continue
    name=${s#*(}; name=${name%)*}
    s=${s##*) }
    read -r -a f <<< "$s"
    printf '%s %s %s\n' "${t##*/}" "$(( f[11] + f[12] ))" "${name// /_}"
  done
}
cg_threads > "$RUN/clickgate-threads-before.txt"

# ---- rounds: A B B A ... ---------------------------------------------------------------------
TABLE_ROWS=()
NOTES=()
declare -A done_rounds=([nginx]=0 [clickgate]=0)
declare -a NG_RPS=() NG_P50=() NG_P99=() NG_CPU=() CG_RPS=() CG_P50=() CG_P99=() CG_CPU=()
slots=$(( 2 * ROUNDS ))
for (( slot = 0; slot < slots; slot++ )); do
  case $(( slot % 4 )) in 0|3) server=nginx ;; *) server=clickgate ;; esac
  n=$(( done_rounds[$server] + 1 ))
  done_rounds[$server]=$n
  attempt=0
  while :; do
    label=$(printf 'round%02d-%s' "$(( slot + 1 ))" "$server")
    [ "$attempt" -eq 0 ] || label="$label-retry$attempt"
    again=""; [ "$attempt" -eq 0 ] || again=" (retry $attempt)"
    log "slot $(( slot + 1 ))/$slots: $server round $n$again"
    wait_quiet "$label"
    run_round "$server" "$label" "$DURATION" $(( 1000 + slot * 10 + attempt )) round "$attempt"
    if awk -v o="$R_OTHER" -v m="$OTHER_MAX" 'BEGIN { exit !(o > m) }'; then
      if [ "$attempt" -lt "$RETRIES_MAX" ]; then
        attempt=$(( attempt + 1 ))
        NOTES+=("$server round $n: other CPU $R_OTHER cores > $OTHER_MAX; redone (retry $attempt of $RETRIES_MAX)")
        log "  other CPU $R_OTHER cores > $OTHER_MAX: redoing this round"
        continue
      fi
      NOTES+=("$server round $n: other CPU still $R_OTHER cores > $OTHER_MAX after $RETRIES_MAX retries; kept")
    fi
    break
  done
  TABLE_ROWS+=("| $server | $n | $R_RPS | $R_P50 | $R_P99 | $R_CPU_US | $R_OTHER | $R_SRV_CORES | $R_WRK_CORES | $attempt |")
  if [ "$server" = nginx ]; then
    NG_RPS+=("$R_RPS"); NG_P50+=("$R_P50"); NG_P99+=("$R_P99"); NG_CPU+=("$R_CPU_US")
  else
    CG_RPS+=("$R_RPS"); CG_P50+=("$R_P50"); CG_P99+=("$R_P99"); CG_CPU+=("$R_CPU_US")
  fi
done

# median FORMAT VALUES...
median() {
  local fmt=$1; shift
  printf '%s\n' "$@" | sort -g | awk -v f="$fmt" '{ v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf f "\n", m }'
}
NG_MED_RPS=$(median %.2f "${NG_RPS[@]}"); CG_MED_RPS=$(median %.2f "${CG_RPS[@]}")
NG_MED_P50=$(median %.3f "${NG_P50[@]}"); CG_MED_P50=$(median %.3f "${CG_P50[@]}")
NG_MED_P99=$(median %.3f "${NG_P99[@]}"); CG_MED_P99=$(median %.3f "${CG_P99[@]}")
NG_MED_CPU=$(median %.2f "${NG_CPU[@]}"); CG_MED_CPU=$(median %.2f "${CG_CPU[@]}")

cg_threads > "$RUN/clickgate-threads-after.txt"
# Thread name -> share of clickgate's CPU over the rounds (nginx rounds included: idle there).
THREADS_LINE=$(awk 'NR == FNR { b[$1] = $2; next }
    { d = $2 - (($1 in b) ? b[$1] : 0); by[$3] += d; total += d }
    END { if (total <= 0) exit
          for (n in by) if (by[n] > 0) printf "%s %.1f%%\n", n, 100 * by[n] / total }' \
  "$RUN/clickgate-threads-before.txt" "$RUN/clickgate-threads-after.txt" | sort -k2 -g -r | tr '\n' ',' | sed 's/,$//; s/,/, /g')

# ---- half load (constant rate, open-loop) ----------------------------------------------------
HALF_LINE=""
HALF_FIELDS=""
if [ "$HALF" -eq 1 ]; then
  rate=$(calc "$CG_MED_RPS / 2" '%.0f')
  HALF_ROUNDS=$(( ROUNDS < 3 ? ROUNDS : 3 ))
  log "half load: both servers at $rate req/s, $HALF_ROUNDS rounds each of ${DURATION}s (+2 s warm-up), $CONNECTIONS connections"
  NG_HALF=(); CG_HALF=()
  half_round() {   # server url round
    local out="$RUN/half-r$3-$1.txt" port="${2##*:}"
    "${PIN1[@]}" "$LOADGEN" edge-rate --addr "127.0.0.1:$port" --rate "$rate" --connections "$CONNECTIONS" \
      --duration-s "$DURATION" --warmup-s 2 --pool-seed "$POOL_SEED" --request-seed $((9000 + $3)) \
      --browsers "$BROWSERS_FILE" --bots "$BOTS_FILE" > "$out" 2>&1 \
      || die "clickgate-loadgen edge-rate failed against $1: $(tail -n 5 "$out")"
    local line p99 achieved non3xx errors
    line=$(grep '^rate ' "$out") || die "no result line in $out"
    p99=$(sed 's/.* p99_ms=\([^ ]*\).*/\1/' <<< "$line")
    achieved=$(sed 's/.* achieved_rps=\([^ ]*\).*/\1/' <<< "$line")
    non3xx=$(sed 's/.* non3xx=\([^ ]*\).*/\1/' <<< "$line")
    errors=$(sed 's/.* errors=\([^ ]*\).*/\1/' <<< "$line")
    [ "$non3xx" = 0 ] || fail_check "half load, $1 round $3: $non3xx non-3xx answers (see $out)"
    [ "$errors" = 0 ] || fail_check "half load, $1 round $3: $errors socket errors (see $out)"
    if [ "$(calc "$achieved < 0.98 * $rate" '%d')" = 1 ]; then
      fail_check "half load, $1 round $3: answered $achieved req/s of $rate offered (see $out)"
    fi
    log "  half load $1 round $3: p99 $p99 ms, answered $achieved req/s"
    if [ "$1" = nginx ]; then NG_HALF+=("$p99"); else CG_HALF+=("$p99"); fi
  }
  for r in $(seq 1 "$HALF_ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
      half_round nginx "$NG_URL" "$r"; half_round clickgate "$CG_URL" "$r"
    else
      half_round clickgate "$CG_URL" "$r"; half_round nginx "$NG_URL" "$r"
    fi
  done
  half_cg=$(median %.3f "${CG_HALF[@]}"); half_ng=$(median %.3f "${NG_HALF[@]}")
  HALF_LINE="Half load: both servers offered $rate req/s (half clickgate's median), open-loop over $CONNECTIONS connections, latency from each request's scheduled send; median p99 of $HALF_ROUNDS rounds: clickgate $half_cg ms, nginx $half_ng ms (target: clickgate at most 1 ms)."
  HALF_FIELDS=" half_rps=$rate half_p99_ms=$half_cg nginx_half_p99_ms=$half_ng"
fi

# ---- what the mix did to clickgate -----------------------------------------------------------
first_cg="$RUN/warmup-clickgate.metrics-before.txt"
last_cg=$LAST_CG_METRICS
mix_report() {
  awk '
    FNR == 1 { file++ }
    /^clickgate_clicks_total\{/ || /^clickgate_click_reasons_total\{/ || /^clickgate_edge_requests_total\{/ {
      if (file == 1) before[$1] = $NF; else after[$1] = $NF
    }
    END {
      for (k in after) { d[k] = after[k] - before[k]; if (k ~ /^clickgate_clicks_total/) total += d[k] }
      if (total <= 0) total = 1
      printf "clicks counted: %.0f;", total
      n = split("valid flagged blocked rate_limited", vs, " ")
      for (i = 1; i <= n; i++) { k = "clickgate_clicks_total{verdict=\"" vs[i] "\"}"; printf " %s %.2f%%", vs[i], 100 * d[k] / total }
      printf "\nreasons (share of clicks):"
      for (k in d) if (k ~ /^clickgate_click_reasons_total/ && d[k] > 0) { r = k; sub(/.*reason="/, "", r); sub(/".*/, "", r); printf " %s %.2f%%", r, 100 * d[k] / total }
      other = 0
      for (k in d) if (k ~ /^clickgate_edge_requests_total/) other += d[k]
      printf "\nnon-click edge requests: %.0f\n", other
    }' "$first_cg" "$last_cg"
}
MIX_REPORT=$(mix_report)
WRK_MIX=$(cat "$RUN"/round*-clickgate*.wrk.txt | awk '/^mix: / {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
  END { g = s["generated"] > 0 ? s["generated"] : 1
        printf "wrk sent (clickgate rounds): %d requests; repeats %.2f%%, crawler UAs %.2f%%, datacenter IPs %.2f%%, with cookie %.2f%%\n",
          g, 100 * s["dup"] / g, 100 * s["bot"] / g, 100 * s["dc"] / g, 100 * s["cookie"] / g }')
ng_bytes=$(awk -F'\t' '$1 == "round" && $2 == "nginx" { s += $15; n++ } END { printf "%.0f", n ? s / n : 0 }' "$ROUND_TSV")
cg_bytes=$(awk -F'\t' '$1 == "round" && $2 == "clickgate" { s += $15; n++ } END { printf "%.0f", n ? s / n : 0 }' "$ROUND_TSV")

# Rounds where wrk itself was the limit (its core nearly full, the server's not).
for srv in nginx clickgate; do
  cb=$(awk -F'\t' -v s="$srv" '$1 == "round" && $2 == s && $11 >= 0.95 && $10 < 0.95 { n++ } END { print n + 0 }' "$ROUND_TSV")
  if [ "$cb" -gt 0 ]; then
    NOTES+=("$srv: $cb attempt(s) had wrk at >= 0.95 cores while $srv used < 0.95: client-bound, so $srv's rps there is a lower bound (for nginx this makes ratio rps optimistic for clickgate; cpu_per_req is unaffected)")
  fi
done

# ---- summary ---------------------------------------------------------------------------------
ratio_rps=$(calc "$CG_MED_RPS / $NG_MED_RPS" '%.2f')
ratio_cpu=$(calc "$NG_MED_CPU / $CG_MED_CPU" '%.2f')
FINAL="ratio rps=$ratio_rps cpu_per_req=$ratio_cpu p99_ms=$CG_MED_P99 nginx_p99_ms=$NG_MED_P99$HALF_FIELDS"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock config 2>/dev/null || commit="$commit+dirty"
pin_text="servers on cpu 0, wrk on cpu 1"; [ "$PINNED" -eq 1 ] || pin_text="unpinned"

{
  echo "# Edge load test, $STAMP"
  echo
  echo "clickgate $commit vs nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'); $(wrk --version 2>&1 | head -n 1 | awk '{ print $1, $2 }')."
  echo "$ROUNDS rounds per server of ${DURATION}s, A B B A order, $CONNECTIONS connections, 1 wrk thread, keep-alive, $pin_text;"
  echo "$(nproc --all) cpus, kernel $(uname -r). Location ${#CG_LOCATION} chars, Set-Cookie ${#CG_SET_COOKIE} chars on both;"
  echo "mean bytes per answer (headers + body, as wrk read them): clickgate $cg_bytes, nginx $ng_bytes."
  echo "clickgate RSS after the last round: $CG_RSS MiB; its CPU over the rounds by thread: ${THREADS_LINE:-n/a}."
  echo
  echo "| server | round | rps | p50 ms | p99 ms | cpu µs/req | other cpu cores | server cores | wrk cores | retries |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${TABLE_ROWS[@]}"
  echo
  echo "| server | median rps | median p50 ms | median p99 ms | median cpu µs/req |"
  echo "|---|---|---|---|---|"
  echo "| nginx | $NG_MED_RPS | $NG_MED_P50 | $NG_MED_P99 | $NG_MED_CPU |"
  echo "| clickgate | $CG_MED_RPS | $CG_MED_P50 | $CG_MED_P99 | $CG_MED_CPU |"
  echo
  echo "Counter check (clicks_total + edge_requests_total increase vs wrk's completed requests, allowed +-$CONNECTIONS):"
  echo
  echo '```'
  column -t -s $'\t' "$COUNTS_TSV" 2>/dev/null || cat "$COUNTS_TSV"
  echo '```'
  echo
  echo "Mix: $WRK_MIX"
  echo
  echo "clickgate's verdicts over the run (warm-up included):"
  echo
  echo '```'
  echo "$MIX_REPORT"
  echo '```'
  if [ -n "$HALF_LINE" ]; then echo; echo "$HALF_LINE"; fi
  if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    echo "Notes:"
    printf -- '- %s\n' "${NOTES[@]}"
  fi
  if [ "${#FAILURES[@]}" -gt 0 ]; then
    echo
    echo "FAILED checks:"
    printf -- '- %s\n' "${FAILURES[@]}"
  fi
  echo
  echo "$FINAL"
} > "$RUN/summary.md"

cat "$RUN/summary.md"
if [ "${#FAILURES[@]}" -gt 0 ]; then
  printf 'edge.sh: FAIL: %d check(s) failed:\n' "${#FAILURES[@]}" >&2
  printf '  - %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
