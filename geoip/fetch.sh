#!/usr/bin/env bash
# Fetch MaxMind GeoLite2 databases (Country, City, ASN) and the cloud providers'
# ASNs into this directory.
#
# Source of the databases: the npm package "geolite2" at a pinned version,
# obtained with `npm pack` only (its install script needs a MaxMind licence key,
# so it is never run; the packed tarball already contains the .mmdb files).
# Source of datacenter-asns.txt: the crate "cloudcheck" at a pinned version,
# obtained with `cargo fetch` (its cloud_providers_v3.json lists each cloud
# provider's ASNs and is refreshed by its publisher daily); every provider the
# file tags "cloud" is kept. Each archive is checked against a pinned sha256
# before anything is placed.
#
# Idempotent: if the files are present and match the checksums recorded in
# .fetched and .fetched-hosting for the pinned versions, nothing is downloaded.
# Files are replaced atomically (rename), so a running clickgate that watches
# them for hot reload never sees a half-written database.
#
# Usage: geoip/fetch.sh [--force]      (runnable from any directory)
set -euo pipefail

# ---- pins (bump together; see README.md) ---------------------------------
PKG_NAME="geolite2"
PKG_VERSION="4.0.1"
PKG_TARBALL_SHA256="30f23f80330900923bdde6e64b1cc8d25060239f17c91dd7d2e95446b80e4693"
DATABASES=(GeoLite2-Country GeoLite2-City GeoLite2-ASN)
HOSTING_CRATE="cloudcheck"
HOSTING_VERSION="11.2.0"
HOSTING_CRATE_SHA256="88f8f0de944601a99f67b34e8aa60e33b2cd44ab023815bd0d78ec0ab6119efe"
HOSTING_OUT="datacenter-asns.txt"
# ---------------------------------------------------------------------------

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
STAMP="$HERE/.fetched"
FORCE=0

for arg in "$@"; do
  case "$arg" in
    -f|--force) FORCE=1 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf 'geoip: %s\n' "$*"; }
die() { printf 'geoip: error: %s\n' "$*" >&2; exit 1; }

sha256_of() { sha256sum -- "$1" | cut -d' ' -f1; }

human_size() {
  local bytes=$1
  awk -v b="$bytes" 'BEGIN {
    if (b >= 1048576) printf "%.1f MiB", b / 1048576;
    else if (b >= 1024) printf "%.1f KiB", b / 1024;
    else printf "%d B", b }'
}

report() {
  local state=$1 db f size
  for db in "${DATABASES[@]}"; do
    f="$HERE/$db.mmdb"
    size=$(stat -c %s -- "$f")
    printf '%-22s %11d bytes  (%s)  %s\n' "$db.mmdb" "$size" "$(human_size "$size")" "$state"
  done
}

# Value recorded for KEY in the stamp file, empty if absent.
stamp_get() {
  [ -f "$STAMP" ] || return 0
  awk -v k="$1=" 'index($0, k) == 1 { print substr($0, length(k) + 1); exit }' "$STAMP"
}

is_up_to_date() {
  [ -f "$STAMP" ] || return 1
  [ "$(stamp_get package)" = "$PKG_NAME" ] || return 1
  [ "$(stamp_get version)" = "$PKG_VERSION" ] || return 1
  [ "$(stamp_get tarball_sha256)" = "$PKG_TARBALL_SHA256" ] || return 1
  local db want
  for db in "${DATABASES[@]}"; do
    want=$(stamp_get "$db.mmdb")
    [ -n "$want" ] && [ -f "$HERE/$db.mmdb" ] || return 1
    [ "$(sha256_of "$HERE/$db.mmdb")" = "$want" ] || return 1
  done
}

ensure_npm() {
  command -v npm >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -eq 0 ]; then
    log "npm not found; installing it with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y npm || { apt-get update && apt-get install -y npm; } \
      || die "could not install npm with apt-get"
  else
    die "npm is required but not installed. Install it (e.g. 'sudo apt-get install -y npm') and re-run $0"
  fi
}

for tool in sha256sum tar awk stat; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found"
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/clickgate-geoip.XXXXXX")"
cleanup() {
  rm -rf -- "$TMP"
  rm -f -- "$HERE"/.*.mmdb.partial "$STAMP.partial" "$HERE/.$HOSTING_OUT.partial" "$HOSTING_STAMP.partial"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# verify FILE WANT PIN: stop unless FILE has sha256 WANT, the value of the variable PIN.
verify() {
  local actual
  actual=$(sha256_of "$1")
  if [ "$actual" != "$2" ]; then
    die "checksum mismatch for $(basename -- "$1")
  expected sha256 $2
  got      sha256 $actual
If you are deliberately bumping its version, put the new value in $3."
  fi
  log "$(basename -- "$1") sha256 verified ($actual)"
}

fetch_geolite() {
  if [ "$FORCE" -eq 0 ] && is_up_to_date; then
    log "$PKG_NAME@$PKG_VERSION already present and verified; nothing to do"
    report "up-to-date"
    return 0
  fi
  ensure_npm
  log "fetching $PKG_NAME@$PKG_VERSION with npm pack"
  local tarball_name tarball db src members=()
  tarball_name=$(cd "$TMP" && npm pack --silent --loglevel=error "$PKG_NAME@$PKG_VERSION" | tail -n1)
  tarball="$TMP/$tarball_name"
  [ -f "$tarball" ] || die "npm pack did not produce a tarball (got '$tarball_name')"

  verify "$tarball" "$PKG_TARBALL_SHA256" PKG_TARBALL_SHA256

  mkdir -p "$TMP/x"
  for db in "${DATABASES[@]}"; do members+=("package/dbs/$db.mmdb"); done
  tar -xzf "$tarball" -C "$TMP/x" "${members[@]}" \
    || die "tarball does not contain the expected databases: ${members[*]}"

  # Stage next to the targets (same filesystem), then rename into place.
  {
    echo "# written by geoip/fetch.sh; do not edit"
    echo "package=$PKG_NAME"
    echo "version=$PKG_VERSION"
    echo "tarball_sha256=$PKG_TARBALL_SHA256"
  } > "$STAMP.partial"
  for db in "${DATABASES[@]}"; do
    src="$TMP/x/package/dbs/$db.mmdb"
    [ -s "$src" ] || die "$db.mmdb is missing or empty in the tarball"
    cp -- "$src" "$HERE/.$db.mmdb.partial"
    chmod 0644 "$HERE/.$db.mmdb.partial"
    echo "$db.mmdb=$(sha256_of "$HERE/.$db.mmdb.partial")" >> "$STAMP.partial"
  done
  for db in "${DATABASES[@]}"; do
    mv -f -- "$HERE/.$db.mmdb.partial" "$HERE/$db.mmdb"
  done
  mv -f -- "$STAMP.partial" "$STAMP"

  log "installed $PKG_NAME@$PKG_VERSION into $HERE"
  report "fetched"
}

HOSTING_STAMP="$HERE/.fetched-hosting"

hosting_up_to_date() {
  [ -f "$HOSTING_STAMP" ] && [ -f "$HERE/$HOSTING_OUT" ] || return 1
  [ "$(STAMP=$HOSTING_STAMP stamp_get crate)" = "$HOSTING_CRATE@$HOSTING_VERSION" ] || return 1
  [ "$(STAMP=$HOSTING_STAMP stamp_get crate_sha256)" = "$HOSTING_CRATE_SHA256" ] || return 1
  [ "$(STAMP=$HOSTING_STAMP stamp_get "$HOSTING_OUT")" = "$(sha256_of "$HERE/$HOSTING_OUT")" ] || return 1
}

report_hosting() {
  printf '%-22s %11d ASNs   %s\n' "$HOSTING_OUT" "$(grep -c '^[0-9]' -- "$HERE/$HOSTING_OUT")" "$1"
}

# The crate is fetched the way any dependency is: a scratch package depends on it at the
# pinned version and `cargo fetch` downloads it into cargo's own cache, where its archive is
# checked. Nothing of it is built.
fetch_hosting() {
  if [ "$FORCE" -eq 0 ] && hosting_up_to_date; then
    log "$HOSTING_CRATE@$HOSTING_VERSION already present and verified; nothing to do"
    report_hosting "up-to-date"
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo is required for $HOSTING_OUT (it builds clickgate too)"
  command -v node >/dev/null 2>&1 || ensure_npm
  local pkg="$TMP/hosting" host crate
  mkdir -p "$pkg/src"
  printf '[package]\nname = "clickgate-hosting-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\n%s = "=%s"\n' \
    "$HOSTING_CRATE" "$HOSTING_VERSION" > "$pkg/Cargo.toml"
  : > "$pkg/src/lib.rs"
  host=$(rustc -vV | sed -n 's/^host: //p')
  log "fetching $HOSTING_CRATE@$HOSTING_VERSION with cargo fetch"
  (cd "$pkg" && CARGO_TARGET_DIR="$pkg/target" cargo fetch --quiet --target "$host") \
    || die "cargo fetch of $HOSTING_CRATE@$HOSTING_VERSION failed"
  crate=$(ls -1 "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$HOSTING_CRATE-$HOSTING_VERSION.crate" 2>/dev/null | head -n1)
  [ -f "$crate" ] || die "cargo fetch left no $HOSTING_CRATE-$HOSTING_VERSION.crate in cargo's cache"
  verify "$crate" "$HOSTING_CRATE_SHA256" HOSTING_CRATE_SHA256
  mkdir -p "$TMP/h"
  tar -xzf "$crate" -C "$TMP/h" "$HOSTING_CRATE-$HOSTING_VERSION/cloud_providers_v3.json" \
    || die "the crate does not contain cloud_providers_v3.json"
  node -e '
const [file, crate] = process.argv.slice(1);
const providers = JSON.parse(require("fs").readFileSync(file, "utf8"));
const rows = new Map();
for (const [name, p] of Object.entries(providers)) {
  if (!(p.tags || []).includes("cloud")) continue;
  for (const asn of p.asns || []) {
    if (!Number.isInteger(asn) || asn < 1 || asn > 4294967295) throw new Error(`${name}: bad ASN ${asn}`);
    if (!rows.has(asn)) rows.set(asn, name);
  }
}
if (rows.size < 100) throw new Error(`only ${rows.size} cloud ASNs: the file changed shape`);
const out = [`# The ASNs of every provider tagged "cloud" in cloud_providers_v3.json of ${crate}.`,
  "# Written by geoip/fetch.sh; do not edit. Data: AGPL-3.0, by the authors of the crate.", "# asn provider"];
for (const [asn, name] of [...rows].sort((a, b) => a[0] - b[0])) out.push(`${asn} ${name.replace(/\s+/g, "_")}`);
process.stdout.write(out.join("\n") + "\n");
' "$TMP/h/$HOSTING_CRATE-$HOSTING_VERSION/cloud_providers_v3.json" "$HOSTING_CRATE@$HOSTING_VERSION" > "$HERE/.$HOSTING_OUT.partial" \
    || die "could not read the cloud providers out of cloud_providers_v3.json"
  chmod 0644 "$HERE/.$HOSTING_OUT.partial"
  {
    echo "# written by geoip/fetch.sh; do not edit"
    echo "crate=$HOSTING_CRATE@$HOSTING_VERSION"
    echo "crate_sha256=$HOSTING_CRATE_SHA256"
    echo "$HOSTING_OUT=$(sha256_of "$HERE/.$HOSTING_OUT.partial")"
  } > "$HOSTING_STAMP.partial"
  mv -f -- "$HERE/.$HOSTING_OUT.partial" "$HERE/$HOSTING_OUT"
  mv -f -- "$HOSTING_STAMP.partial" "$HOSTING_STAMP"
  log "installed $HOSTING_OUT from $HOSTING_CRATE@$HOSTING_VERSION"
  report_hosting "fetched"
}

fetch_geolite
fetch_hosting
