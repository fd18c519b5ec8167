#!/usr/bin/env bash
# Fraud quality on flood scenarios: seeded human and attack traffic replayed through
# `clickgate check` with the shipped config (config/clickgate.toml), scored per scenario
# (PRODUCT.md §3 and §11).
#
# Human traffic (examples/fraud_eval.rs): Zipf over the links, consumer-ISP addresses from the
# ASN database (30% IPv6), real browser agents, groups of people behind one carrier-grade NAT
# address with one phone model, and people who genuinely click twice (listed apart).
# Labelled attacks: click spam from one address, rotation inside a /24 and inside an IPv6 /64,
# datacenter traffic, scripted clients and headless browsers, refreshers, and a
# residential-proxy spray of thousands of addresses on one link within minutes.
#
# Usage: loadtest/fraud.sh [options]          (runnable from any directory)
#   --quick        a tenth of the traffic (CI's smoke run): checks that every scenario is
#                  present and every click scored
#   --seed N       the generator's seed (default 1)
#   --no-build     use the existing release builds, never run cargo
#   -h, --help     this text
#
# Output: a Markdown table (scenario, clicks, not valid, share, clicks valid but caught by a
# rule in observe mode, top reasons), then
#   fraud attack_recall=<x> human_fp=<y> observed_attack_recall=<x> observed_human_fp=<y>
#         attack_clicks=<n> human_clicks=<n> repeats_not_valid=<a>/<b>
# (one line), where the observed_ figures are what the rules in observe mode would add if they
# enforced, and human_fp leaves out people's genuine second clicks (human_repeat).
# Figures are never asserted; the script fails when data or tools are missing, a scenario is
# absent, or a click goes unscored.
set -euo pipefail
export LC_ALL=C

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
cd "$ROOT"

SCALE=1.0
SEED=1
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) SCALE=0.1 ;;
    --seed) SEED="${2:?--seed needs a number}"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'fraud.sh: unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
  esac
  shift
done

die() { printf 'fraud.sh: %s\n' "$*" >&2; exit 1; }

geoip/fetch.sh >/dev/null
config/bots/fetch.sh >/dev/null

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/clickgate"
EVAL="$TARGET/release/examples/fraud_eval"
if [ "$BUILD" -eq 1 ]; then
  cargo build --quiet --release --bin clickgate --example fraud_eval || die "cargo build failed"
fi
[ -x "$BIN" ] && [ -x "$EVAL" ] || die "$BIN or $EVAL is missing; run without --no-build"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/clickgate-fraud.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT
LINKS=200

# The demo program's store, with the links the generator draws from.
cg() { "$BIN" --config config/clickgate.toml --data-dir "$WORK/data" "$@"; }
for i in $(seq 1 "$LINKS"); do
  code="$(printf 'f%04d' "$i")"
  partner=alice; [ $((i % 3)) -eq 0 ] && partner=bob
  cg link add --code "$code" --program demo --partner "$partner" --destination "https://example.com/p/$i" >/dev/null \
    || die "link add $code failed"
done

"$EVAL" gen --asn-db geoip/GeoLite2-ASN.mmdb --browsers config/bots/browser-user-agents.txt \
  --links "$LINKS" --seed "$SEED" --scale "$SCALE" --out "$WORK"
cg check < "$WORK/clicks.jsonl" > "$WORK/verdicts.jsonl" || die "clickgate check rejected lines"
"$EVAL" score --labels "$WORK/labels.txt" < "$WORK/verdicts.jsonl" | tee "$WORK/report.txt"

for s in human human_cgnat human_repeat attack:click_spam attack:rotation_v4_24 attack:rotation_v6_64 \
  attack:datacenter attack:scripted attack:refresher attack:residential_spray; do
  grep -q "^| $s | [1-9]" "$WORK/report.txt" || die "scenario $s is missing from the report"
done
[ "$(wc -l < "$WORK/verdicts.jsonl")" -eq "$(wc -l < "$WORK/labels.txt")" ] || die "verdicts and labels differ in count"
