#!/usr/bin/env bash
# Start-up time (PRODUCT.md §10: at most 1 s to serve with the demo config, at most 5 s with
# 1M links): the time from spawning `clickgate serve` to its first 302, with the demo config and
# with a catalog of a million links, and serve's RSS then.
#
# It runs loadtest/links.sh, which generates and imports the links, times both starts (each
# after a first start has put the GeoIP databases and user-agent lists in the page cache) and
# checks the link changes too; its options pass through (--quick: 50,000 links, the link part
# of the start scaled up to a million, and the RSS likewise).
#
# Usage: loadtest/startup.sh [links.sh options]      (runnable from any directory)
# Output: links.sh's, then as the last line
#   startup demo_ms=<a> links_1m_ms=<b> rss_1m_mib=<c>
# Exit status: links.sh's.
set -euo pipefail
export LC_ALL=C

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
FIGURES="$(mktemp)"
trap 'rm -f "$FIGURES"' EXIT
LINKS_FIGURES="$FIGURES" "$HERE/links.sh" "$@"
# shellcheck disable=SC1090
. "$FIGURES"
[ -n "${START_MS:-}" ] || { echo "startup.sh: links.sh wrote no figures" >&2; exit 1; }
# At a million links, the RSS itself; with fewer, the base plus a million of the measured growth.
RSS_1M_MIB=$(awk -v n="$LINKS" -v rss="$RSS_KIB" -v base="$BASE_RSS_KIB" -v per="$BYTES_PER_LINK" \
  'BEGIN { printf "%.0f", (n == 1000000 ? rss * 1024 : base * 1024 + per * 1000000) / 1048576 }')
echo "startup demo_ms=$BASE_START_MS links_1m_ms=$STARTUP_1M_MS rss_1m_mib=$RSS_1M_MIB"
