#!/usr/bin/env bash
# Link-table load test (issue 22, PRODUCT.md §10 "Startup"): a million links created by
# `clickgate link import`, then served by the embedded `clickgate serve`.
#
# 1. Starts `serve` on the fresh data dir (its demo section seeds one program, 100 partners and
#    one link) twice (the first warms the page cache), records the second's time to its first
#    302 and its RSS then, and stops it: the base.
# 2. Imports N links from a generated CSV (about 40 destination directories, 12 tag sets, 100
#    partners) with `clickgate link import`, timed from the command's start to its exit.
# 3. Starts `serve` again and times the first 302 for the last link imported, polling it from
#    the moment the process starts; then records RSS: bytes_per_link = (RSS - base RSS) / N.
# 4. While it runs, adds one link (`link add`) and pauses another (`link pause`). For each, from
#    the moment the command returns (its commit is done) until the edge answers accordingly
#    (the new link's destination; the paused link's fallback), polled every 20 ms by one python3
#    process over raw sockets (so the polling hardly loads the machine): the time,
#    and serve's CPU time (all its threads' run time from /proc/<pid>/task/*/schedstat, which
#    includes answering the polls). Its idle CPU over the same time is reported beside it.
# Checks (exit 1 when one fails): the import adds N links; the last link's Location is its
# destination with its tags; each change is served as described within 30 s; serve applied
# the changes as updates (clickgate_link_table_updates_total grew) and never read every link
# again (clickgate_link_table_reloads_total stayed 0).
#
# Usage: loadtest/links.sh [options]          (runnable from any directory)
#   --links N           links imported (default 1000000; 50000 with --quick)
#   --quick             smoke run: 50000 links
#   --reload-ms MS      serve's edge.link_reload_interval_ms (default 1000)
#   --keep              keep the scratch data (data dir, CSV)
#   --no-build          never run cargo, even if the binary looks older than the sources
#   -h, --help          this text
#
# Output: a Markdown summary and, as the last line,
#   links import_per_s=<n> startup_1m_ms=<a> bytes_per_link=<b> change_visible_ms=<c> change_cpu_ms=<d>
# startup_1m_ms is the run's time to the first 302, its links' part (over the base start)
# scaled up to a million links: the time itself with the default --links. change_visible_ms and change_cpu_ms are the larger of the two
# changes'. Everything (logs, metrics, summary.md) is in loadtest/out/<timestamp>-links/.
# Exit status: 0 when every check passed, 1 when one failed, 2 on a usage error.
set -euo pipefail
export LC_ALL=C   # '.' as decimal point in $EPOCHREALTIME and awk

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
# clickgate resolves the paths in its config (geoip/, config/bots/) from the working directory.
cd "$ROOT"

# ---- options ---------------------------------------------------------------------------------
LINKS=1000000
links_set=0
RELOAD_MS=1000
KEEP=0
BUILD=1
usage() { sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
usage_error() { printf 'links.sh: %s\n(see --help)\n' "$*" >&2; exit 2; }
need_int() { [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 needs a positive integer, got '${2:-}'"; }
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --links) need_int "$1" "${2:-}"; LINKS=$2; links_set=1; shift 2 ;;
    --reload-ms) need_int "$1" "${2:-}"; RELOAD_MS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --keep) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
if [ "$QUICK" -eq 1 ] && [ "$links_set" -eq 0 ]; then LINKS=50000; fi

# ---- helpers ---------------------------------------------------------------------------------
log() { printf '[links %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'links.sh: FAIL: %s\n' "$*" >&2; exit 1; }
calc() { awk "BEGIN { printf \"${2:-%.0f}\", ($1) }"; }
now_ms() { local t=$EPOCHREALTIME; echo $(( ${t%.*} * 1000 + 10#${t#*.} / 1000 )); }

# Run time of every thread of a process, in ns (0 once it is gone).
proc_ns() {
  local total=0 f ns _rest
  for f in /proc/"$1"/task/*/schedstat; do
    read -r ns _rest < "$f" 2>/dev/null || continue
    total=$(( total + ns ))
  done
  echo "$total"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

. "$HERE/lib.sh"

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
ensure_apt curl curl
ensure_apt ss iproute2
ensure_apt python3 python3-minimal

# ---- data and binary -------------------------------------------------------------------------
log "fetching GeoIP databases and user-agent lists (idempotent)"
geoip/fetch.sh >&2 || die "geoip/fetch.sh failed"
config/bots/fetch.sh >&2 || die "config/bots/fetch.sh failed"

BIN="target/release/clickgate"
build() {
  log "$1; building (cargo waits if another build holds the lock)"
  cargo build --release --bin clickgate >&2 || die "cargo build --release --bin clickgate failed"
}
if [ ! -x "$BIN" ]; then
  build "$BIN missing"
elif [ "$BUILD" -eq 1 ] && [ -n "$(find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)" ]; then
  build "the binary is older than the sources (--no-build skips this)"
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="loadtest/out/$STAMP-links"
[ ! -e "$RUN" ] || RUN="$RUN-$$"
SCRATCH="$RUN/scratch"
mkdir -p "$SCRATCH"
log "run dir: $RUN ($LINKS links)"

free_port EDGE
free_port ADMIN
free_port API
CONFIG="$RUN/links.toml"
{
  cat <<EOF
# loadtest/links.sh: every check on, as in config/loadtest.toml; $LINKS links come by import.
data_dir = "$SCRATCH/data"

[listen]
edge = "127.0.0.1:$EDGE"
admin = "127.0.0.1:$ADMIN"
api = "127.0.0.1:$API"

[edge]
link_reload_interval_ms = $RELOAD_MS

[checks]
trusted_proxies = ["127.0.0.0/8"]

[checks.geoip]
country_db = "geoip/GeoLite2-Country.mmdb"
asn_db = "geoip/GeoLite2-ASN.mmdb"

[checks.bots]
crawler_list = "config/bots/crawler-user-agents.json"
generic_list = "config/bots/isbot-patterns.json"

[[demo.programs]]
id = "shop"
name = "Shop"
currency = "USD"
allowed_domains = ["example.com"]
fallback_url = "https://shop.example.com/"

[[demo.links]]
code = "base"
program = "shop"
partner = "p0"
destination = "https://shop.example.com/"
EOF
  for p in $(seq 0 99); do printf '\n[[demo.partners]]\nid = "p%d"\nname = "Partner %d"\n' "$p" "$p"; done
} > "$CONFIG"

SERVE_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" -eq 0 ] && [ -d "$SCRATCH" ]; then rm -rf -- "$SCRATCH"; fi
  log "results in $RUN"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cg() { "$BIN" --config "$CONFIG" "$@"; }
# location PATH: the edge's answer to GET PATH, as "<status> <Location>".
location() {
  curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 2 -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0' \
    -H 'X-Forwarded-For: 198.19.0.1' "http://127.0.0.1:$EDGE$1" 2>/dev/null || true
}
start_serve() {   # start_serve LOG: starts serve in the background; sets SERVE_PID
  "$BIN" --config "$CONFIG" serve > "$1" 2>&1 &
  SERVE_PID=$!
}
stop_serve() {
  kill -TERM "$SERVE_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
  SERVE_PID=""
}
# wait_for PATH LOCATION LIMIT_MS [START_MS]: polls PATH every 20 ms until the answer is a 302
# whose Location starts with LOCATION (or is LOCATION, when it ends in '/'); prints the ms since
# START_MS (default: now); fails after LIMIT_MS. One python3 process polls over raw sockets, so
# the polling costs the machine next to nothing (a curl process per poll took enough CPU on two
# cores to slow the server's start-up it was timing). Each poll comes from another address
# (loopback is a trusted proxy), so no per-client check sees a repeat.
wait_for() {
  local out
  out=$(python3 - "$EDGE" "$1" "$2" "$3" "${4:-$(now_ms)}" "$SERVE_PID" <<'PY'
import os, socket, sys, time
port, path, want, limit_ms, start_ms, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
exact = want.endswith("/")
last = "no answer"
for n in range(1 << 30):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall((f"GET {path} HTTP/1.1\r\nHost: links\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0\r\n"
                       f"X-Forwarded-For: 198.18.{n // 250 % 250}.{n % 250 + 1}\r\nConnection: close\r\n\r\n").encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        loc = next((h.split(":", 1)[1].strip() for h in head[1:] if h.lower().startswith("location:")), "")
        last = f"{head[0]} {loc}"
        if head[0].split(" ")[1:2] == ["302"] and (loc == want if exact else loc.startswith(want)):
            print(int(time.time() * 1000) - start_ms)
            sys.exit(0)
    except OSError as e:
        last = str(e)
    if int(time.time() * 1000) - start_ms > limit_ms:
        print(f"never: {last}")
        sys.exit(1)
    try:
        os.kill(pid, 0)
    except OSError:
        print(f"serve exited: {last}")
        sys.exit(1)
    time.sleep(0.02)
PY
  ) || die "$1 did not answer 302 to $2: $out; log: $RUN/serve.log"
  echo "$out"
}
metric() { curl -s --max-time 2 "http://127.0.0.1:$ADMIN/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }

# ---- 1. base: serve without the links ----------------------------------------------------------
log "base: serve with the demo section only"
# A first start reads the GeoIP databases and user-agent lists from disk; the second, timed,
# finds them in the page cache, as the start with the links will.
start_serve "$RUN/serve-warm.log"
wait_for /r/base "https://shop.example.com/?" 60000 > /dev/null
stop_serve
T0=$(now_ms)
start_serve "$RUN/serve-base.log"
BASE_START_MS=$(wait_for /r/base "https://shop.example.com/?" 60000 "$T0")
sleep 1
BASE_RSS=$(rss_kib "$SERVE_PID")
stop_serve
log "base: first 302 after $BASE_START_MS ms, RSS $BASE_RSS KiB"

# ---- 2. import ---------------------------------------------------------------------------------
CSV="$SCRATCH/links.csv"
LAST=$(printf 'l%07d' $(( LINKS - 1 )))
log "writing $LINKS rows to $CSV"
awk -v n="$LINKS" 'BEGIN {
  print "code,program,partner,destination,channel,utm_source,utm_medium,utm_campaign"
  split("web,social,email,qr", ch, ",")
  split("news,partner,social,print", src, ",")
  for (i = 0; i < n; i++)
    printf "l%07d,shop,p%d,https://shop.example.com/c%d/item-%d?ref=%d,%s,%s,%s,%s\n", i, i % 100, i % 40, i, i % 977, ch[i % 4 + 1], src[i % 4 + 1], (i % 3 == 0 ? "" : "cg"), "spring" (i % 3)
}' > "$CSV"
log "importing"
T0=$(now_ms)
cg link import "$CSV" 2> "$RUN/import.log" || die "link import failed: $(tail -n 5 "$RUN/import.log")"
IMPORT_MS=$(( $(now_ms) - T0 ))
grep -q "link import: $LINKS added, 0 rejected" "$RUN/import.log" || die "link import did not add $LINKS links: $(tail -n 3 "$RUN/import.log")"
IMPORT_PER_S=$(calc "$LINKS * 1000 / $IMPORT_MS")
log "imported $LINKS links in $IMPORT_MS ms ($IMPORT_PER_S links/s)"

# ---- 3. start-up with every link -----------------------------------------------------------------
LAST_IDX=$(( LINKS - 1 ))
LAST_DEST="https://shop.example.com/c$(( LAST_IDX % 40 ))/item-$LAST_IDX?ref=$(( LAST_IDX % 977 ))&utm_source="
log "serve with $LINKS links: timing the first 302 for $LAST"
T0=$(now_ms)
start_serve "$RUN/serve.log"
START_MS=$(wait_for "/r/$LAST" "$LAST_DEST" 120000 "$T0")
# The time itself, with the links' part (over the base start, if any) scaled up to a million.
STARTUP_1M_MS=$(calc "$START_MS + ($START_MS > $BASE_START_MS ? $START_MS - $BASE_START_MS : 0) * (1000000 / $LINKS - 1)")
sleep 1
RSS=$(rss_kib "$SERVE_PID")
BYTES_PER_LINK=$(calc "($RSS - $BASE_RSS) * 1024 / $LINKS")
log "first 302 after $START_MS ms; RSS $RSS KiB ($BYTES_PER_LINK bytes a link over the base)"

# ---- 4. changes while serving --------------------------------------------------------------------
sleep 2
IDLE_WINDOW_MS=2000
I0=$(proc_ns "$SERVE_PID")
sleep 2
IDLE_NS_PER_MS=$(calc "($(proc_ns "$SERVE_PID") - $I0) / $IDLE_WINDOW_MS" "%.0f")

# change NAME PATH LOCATION CLI-ARGS...: runs the CLI command, then waits for PATH to answer
# LOCATION; sets CH_MS (the wait), CH_CPU (serve's CPU ms meanwhile) and CH_IDLE (what serve
# uses idle in as long).
change() {
  local name=$1 path=$2 want=$3 c0 c1
  shift 3
  cg "$@" > "$RUN/$name.log" 2>&1 || die "$* failed: $(cat "$RUN/$name.log")"
  c0=$(proc_ns "$SERVE_PID")
  CH_MS=$(wait_for "$path" "$want" 30000)
  c1=$(proc_ns "$SERVE_PID")
  CH_CPU=$(calc "($c1 - $c0) / 1000000" "%.1f")
  CH_IDLE=$(calc "$IDLE_NS_PER_MS * $CH_MS / 1000000" "%.1f")
}
change add /r/new-link "https://example.com/new?" link add --code new-link --program shop --partner p7 --destination https://example.com/new
ADD_MS=$CH_MS ADD_CPU=$CH_CPU ADD_IDLE=$CH_IDLE
log "added link served after $ADD_MS ms; serve's CPU $ADD_CPU ms (idle: $ADD_IDLE ms)"
sleep 1.5
PAUSED=$(printf 'l%07d' $(( LINKS / 2 )))
change pause "/r/$PAUSED" "https://shop.example.com/" link pause "$PAUSED"
PAUSE_MS=$CH_MS PAUSE_CPU=$CH_CPU PAUSE_IDLE=$CH_IDLE
log "paused link at the fallback after $PAUSE_MS ms; serve's CPU $PAUSE_CPU ms (idle: $PAUSE_IDLE ms)"

UPDATES=$(metric clickgate_link_table_updates_total)
RELOADS=$(metric clickgate_link_table_reloads_total)
curl -s --max-time 2 "http://127.0.0.1:$ADMIN/metrics" > "$RUN/metrics.txt" || true
[ "${UPDATES:-0}" -ge 2 ] 2>/dev/null || die "serve applied ${UPDATES:-no} updates, not the 2 changes"
[ "${RELOADS:-1}" = "0" ] || die "serve read every link again ($RELOADS reloads) for a change"
stop_serve

CHANGE_MS=$(( ADD_MS > PAUSE_MS ? ADD_MS : PAUSE_MS ))
CHANGE_CPU=$(awk -v a="$ADD_CPU" -v b="$PAUSE_CPU" 'BEGIN { printf "%.0f", (a > b ? a : b) }')
{
  echo "# links.sh $STAMP"
  echo
  echo "| figure | value |"
  echo "|---|---|"
  echo "| links | $LINKS |"
  echo "| import | $IMPORT_MS ms, $IMPORT_PER_S links/s |"
  echo "| serve start, demo only (first 302) | $BASE_START_MS ms, RSS $BASE_RSS KiB |"
  echo "| serve start, every link (first 302 for $LAST) | $START_MS ms, RSS $RSS KiB |"
  echo "| RSS growth a link | $BYTES_PER_LINK bytes |"
  echo "| link added: visible after / serve CPU / idle CPU | $ADD_MS ms / $ADD_CPU ms / $ADD_IDLE ms |"
  echo "| link paused: visible after / serve CPU / idle CPU | $PAUSE_MS ms / $PAUSE_CPU ms / $PAUSE_IDLE ms |"
  echo "| reload interval | $RELOAD_MS ms |"
  echo "| table updates / full reloads while serving | $UPDATES / $RELOADS |"
  echo "| load average at the end | $(cut -d' ' -f1-3 /proc/loadavg) |"
} > "$RUN/summary.md"
cat "$RUN/summary.md"
# loadtest/startup.sh reads the start-up figures from here.
if [ -n "${LINKS_FIGURES:-}" ]; then
  printf 'LINKS=%s\nBASE_START_MS=%s\nBASE_RSS_KIB=%s\nSTART_MS=%s\nSTARTUP_1M_MS=%s\nRSS_KIB=%s\nBYTES_PER_LINK=%s\n' \
    "$LINKS" "$BASE_START_MS" "$BASE_RSS" "$START_MS" "$STARTUP_1M_MS" "$RSS" "$BYTES_PER_LINK" > "$LINKS_FIGURES"
fi
echo
echo "links import_per_s=$IMPORT_PER_S startup_1m_ms=$STARTUP_1M_MS bytes_per_link=$BYTES_PER_LINK change_visible_ms=$CHANGE_MS change_cpu_ms=$CHANGE_CPU"
