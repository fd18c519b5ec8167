#!/usr/bin/env bash
# Rescoring at scale: `clickgate rescore` over a click log of about a million clicks
# (PRODUCT.md §3; the goal is under 30 s).
#
# The log is the flood scenarios of loadtest/fraud.sh, drawn at 20 times their size (people,
# carrier-NAT groups and seven attacks over two hours on 200 links), judged with the shipped
# config and written as the edge logs them (examples/fraud_eval.rs `log`). The new rules are
# the shipped config with two thresholds tightened: a client's clicks a minute (ip_max 30 → 10)
# and a client's clicks on one link (link_ip_max 10 → 3).
#
# Usage: loadtest/rescore.sh [options]          (runnable from any directory)
#   --quick        the scenarios at their own size, about 52,000 clicks (CI's smoke run)
#   --seed N       the generator's seed (default 1)
#   --no-build     use the existing release builds, never run cargo
#   -h, --help     this text
#
# Output: rescore's tables, then one line
#   rescore clicks=<n> seconds=<s> clicks_per_s=<r> rss_mib=<m> changed=<c>
# Figures are never asserted; the script fails when a tool is missing, when rescore fails, or
# when it did not read every logged click.
set -euo pipefail
export LC_ALL=C

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
cd "$ROOT"

SCALE=20
SEED=1
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) SCALE=1.0 ;;
    --seed) SEED="${2:?--seed needs a number}"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'rescore.sh: unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
  esac
  shift
done

die() { printf 'rescore.sh: %s\n' "$*" >&2; exit 1; }

geoip/fetch.sh >/dev/null
config/bots/fetch.sh >/dev/null

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/clickgate"
EVAL="$TARGET/release/examples/fraud_eval"
if [ "$BUILD" -eq 1 ]; then
  cargo build --quiet --release --bin clickgate --example fraud_eval || die "cargo build failed"
fi
[ -x "$BIN" ] && [ -x "$EVAL" ] || die "$BIN or $EVAL is missing; run without --no-build"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/clickgate-rescore.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT
LINKS=200
CONFIG=config/clickgate.toml

cg() { "$BIN" --config "$CONFIG" --data-dir "$WORK/data" "$@"; }
{
  echo "code,program,partner,destination"
  for i in $(seq 1 "$LINKS"); do
    partner=alice; [ $((i % 3)) -eq 0 ] && partner=bob
    printf 'f%04d,demo,%s,https://example.com/p/%d\n' "$i" "$partner" "$i"
  done
} > "$WORK/links.csv"
cg link import "$WORK/links.csv" >/dev/null || die "link import failed"

"$EVAL" gen --asn-db geoip/GeoLite2-ASN.mmdb --browsers config/bots/browser-user-agents.txt \
  --links "$LINKS" --seed "$SEED" --scale "$SCALE" --out "$WORK" 2>/dev/null
"$EVAL" log --config "$CONFIG" --data-dir "$WORK/data" < "$WORK/clicks.jsonl" 2> "$WORK/log.txt" || die "$(cat "$WORK/log.txt")"
cat "$WORK/log.txt" >&2
LOGGED="$(sed -n 's/.*logged \([0-9]*\) clicks.*/\1/p' "$WORK/log.txt")"

# The new rules: the shipped config with two thresholds tightened.
sed -e 's/^ip_max = 30$/ip_max = 10/' "$CONFIG" > "$WORK/new-rules.toml"
grep -q '^ip_max = 10$' "$WORK/new-rules.toml" || die "the shipped config has no 'ip_max = 30' line to tighten"
sed -i -e 's/^link_ip_max = 10$/link_ip_max = 3/' "$WORK/new-rules.toml"
grep -q '^link_ip_max = 3$' "$WORK/new-rules.toml" || die "the shipped config has no 'link_ip_max = 10' line to tighten"

# python3 runs it, for its wall time and its peak RSS (the child's ru_maxrss).
python3 - "$WORK" "$BIN" "$CONFIG" <<'EOF' || die "rescore failed: $(cat "$WORK/rescore.err")"
import resource, subprocess, sys, time
work, binary, config = sys.argv[1:4]
args = [binary, "--config", config, "--data-dir", f"{work}/data", "rescore", "--rules", f"{work}/new-rules.toml", "--json"]
start = time.monotonic()
with open(f"{work}/report.json", "w") as out, open(f"{work}/rescore.err", "w") as err:
    code = subprocess.run(args, stdout=out, stderr=err).returncode
seconds = time.monotonic() - start
open(f"{work}/measure.txt", "w").write(f"{seconds} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\n")
sys.exit(code)
EOF
read -r TOOK PEAK_KIB < "$WORK/measure.txt"
# The tables, from the JSON report.
python3 - "$WORK/report.json" "$LOGGED" "$TOOK" "$PEAK_KIB" <<'EOF'
import json, sys
report, logged, seconds, peak = json.load(open(sys.argv[1])), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
t = report["tally"]
print("| logged -> new | clicks |\n|---|---:|")
for pair, n in sorted(t["verdicts"].items()):
    print(f"| {pair} | {n} |")
print("\n| reason | added | removed |\n|---|---:|---:|")
for r in sorted(set(t["reasons_added"]) | set(t["reasons_removed"])):
    print(f"| {r} | {t['reasons_added'].get(r, 0)} | {t['reasons_removed'].get(r, 0)} |")
if report["read_events"] != logged or t["clicks"] != logged:
    sys.exit(f"rescore.sh: rescore read {report['read_events']} events and judged {t['clicks']}, of {logged} logged")
print(f"\nrescore clicks={t['clicks']} seconds={seconds:.2f} clicks_per_s={t['clicks'] / seconds:.0f} "
      f"rss_mib={peak / 1024:.0f} changed={t['changed']}")
EOF
