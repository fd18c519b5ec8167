#!/usr/bin/env bash
# Checks every unit in systemd/: `systemd-analyze verify` must be clean and
# `systemd-analyze security` (offline, from the file) must rate it OK or SAFE.
#
# verify needs ExecStart's binary to exist, so each unit is checked from a copy whose
# /usr/local/bin/clickgate points at a built binary (target/release/clickgate by default;
# --bin PATH for another). The units themselves are not changed.
#
# Usage: systemd/check.sh [--bin PATH]     (runnable from any directory)
# Output: one line per unit, `unit=<name> verify=clean exposure=<n> rating=<OK|SAFE|...>`.
# Exit status: 0 when every unit passed, 1 when one did not, 2 on a usage error.
set -euo pipefail
export LC_ALL=C.UTF-8

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$HERE/.." && pwd -P)"
BIN="$ROOT/target/release/clickgate"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$(realpath -- "${2:?--bin needs a path}")"; shift 2 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'check.sh: unknown argument: %s\n' "$1" >&2; exit 2 ;;
  esac
done
command -v systemd-analyze >/dev/null || { echo "check.sh: systemd-analyze is not installed (Debian package systemd)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "check.sh: $BIN is not built (cargo build --release)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failed=0
for unit in "$HERE"/*.service; do
  name="$(basename "$unit")"
  sed "s#/usr/local/bin/clickgate#$BIN#g" "$unit" > "$WORK/$name"
  if ! out="$(systemd-analyze verify "$WORK/$name" 2>&1)" || [ -n "$out" ]; then
    printf 'unit=%s verify=FAILED\n%s\n' "$name" "$out"
    failed=1
    continue
  fi
  report="$(systemd-analyze security --offline=true "$WORK/$name" 2>&1)" || true
  line="$(grep 'Overall exposure level' <<< "$report" || true)"
  exposure="$(sed -n 's/.*: \([0-9.]*\) .*/\1/p' <<< "$line")"
  rating="$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $(i + 1); exit } }' <<< "${line#*:}")"
  printf 'unit=%s verify=clean exposure=%s rating=%s\n' "$name" "${exposure:-?}" "${rating:-?}"
  case "$rating" in
    OK|SAFE) ;;
    *) printf '%s\n' "$report" | grep -v '^✓' >&2; failed=1 ;;
  esac
done
exit "$failed"
