#!/usr/bin/env bash
# Fetch the bot / browser user-agent lists used by clickgate's bot checks.
#
#   crawler-user-agents.json  <- npm "crawler-user-agents" (MIT): the package's
#                                JSON list of {"pattern", "instances", ...}
#   browser-user-agents.txt   <- npm "user-agents" (BSD-2-Clause): distinct real
#                                browser userAgent strings, one per line,
#                                most frequent (by the package's weight) first
#   isbot-patterns.json       <- npm "isbot" (Unlicense): its generic pattern
#                                list, a JSON array of case-insensitive regexes
#
# With --eval it also fetches the evaluation corpora of loadtest/bots.sh into
# eval/ (see README.md): Debian "uap-core" (Apache-2.0, apt-get download),
# PyPI "fake-useragent" (Apache-2.0, pip download), the training sources PyPI
# "crawlerdetect" and "device_detector" (their test fixtures) and npm
# "random-useragent" and "woothee" (their agent lists), npm "js-yaml" (MIT, to
# read the YAML) and isbot's own code (to run isbot beside ours).
#
# Packages are obtained with `npm pack` at pinned versions (never a URL) and
# each tarball is checked against a pinned sha256. Idempotent: if both files
# exist and match the checksums recorded in .fetched, nothing is downloaded.
# Files are replaced atomically (rename) so a watcher never sees partial data.
#
# Usage: config/bots/fetch.sh [--force] [--eval]    (runnable from any directory)
set -euo pipefail

# ---- pins (see README.md for how to bump) --------------------------------
CRAWLERS_PKG="crawler-user-agents"
CRAWLERS_VERSION="1.60.0"
CRAWLERS_TARBALL_SHA256="355ff319e17919f1738122752c8036d605d0e1bcba81de31e84377d12b286d79"

BROWSERS_PKG="user-agents"
BROWSERS_VERSION="2.1.198"
BROWSERS_TARBALL_SHA256="581c4f5074669b6f125263b8ddf302d221a26a06842488c6cc8d50dc5c5c0851"

ISBOT_PKG="isbot"
ISBOT_VERSION="5.2.4"
ISBOT_TARBALL_SHA256="5eceab35fd973ab94a0bd0cc790b096fe85f57724c727c46a425228f00d5d8f6"

# Evaluation only (--eval).
YAML_PKG="js-yaml"
YAML_VERSION="4.1.0"
YAML_TARBALL_SHA256="0dae332559cf22b21c26ea70e732afd8303ff99412f9c3d9d209faa8882cf2ca"
UAP_DEB="uap-core"
UAP_VERSION="1:0.16.0-1"
UAP_DEB_SHA256="a4a0083299d7d27b2ce560b3c8f589fa2bc4c583e8229fb8ac642694fe230f4e"
FAKE_PYPI="fake-useragent"
FAKE_VERSION="2.2.0"
FAKE_WHEEL_SHA256="67f35ca4d847b0d298187443aaf020413746e56acd985a611908c73dba2daa24"
DETECT_PYPI="crawlerdetect"
DETECT_VERSION="0.4.2"
DETECT_SDIST_SHA256="2ecbc825ec9bbfe94d1878078fbc3d336ed4b247a00dd56691479554ca3cb2ef"
DD_PYPI="device_detector"
DD_VERSION="6.5.1"
DD_SDIST_SHA256="610ed34b173b96ee91aa38165084695bbf76f6a5bd76bbb4fd777f7af1ff4170"
RANDOMUA_PKG="random-useragent"
RANDOMUA_VERSION="0.5.0"
RANDOMUA_TARBALL_SHA256="ddd7379d6323b8d1e8ad13b6e77e877fa75ec475720d426ae8bb5a09f2eafe5c"
WOOTHEE_PKG="woothee"
WOOTHEE_VERSION="1.11.1"
WOOTHEE_TARBALL_SHA256="9e744f0584515248be4890cf5e77ceb1eb761075877df80ba42dd4369508465e"
# ---------------------------------------------------------------------------

CRAWLERS_OUT="crawler-user-agents.json"
BROWSERS_OUT="browser-user-agents.txt"
ISBOT_OUT="isbot-patterns.json"

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
STAMP="$HERE/.fetched"
FORCE=0
EVAL=0

for arg in "$@"; do
  case "$arg" in
    -f|--force) FORCE=1 ;;
    --eval) EVAL=1 ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
  f="$HERE/$ISBOT_OUT"; size=$(stat -c %s -- "$f")
  printf '%-26s %9d bytes  %5d entries  %s\n' "$ISBOT_OUT" "$size" \
    "$(grep -c '^ "' -- "$f")" "$state"
}

is_up_to_date() {
  [ -f "$STAMP" ] || return 1
  [ "$(stamp_get crawlers)" = "$CRAWLERS_PKG@$CRAWLERS_VERSION" ] || return 1
  [ "$(stamp_get crawlers_tarball_sha256)" = "$CRAWLERS_TARBALL_SHA256" ] || return 1
  [ "$(stamp_get browsers)" = "$BROWSERS_PKG@$BROWSERS_VERSION" ] || return 1
  [ "$(stamp_get browsers_tarball_sha256)" = "$BROWSERS_TARBALL_SHA256" ] || return 1
  [ "$(stamp_get isbot)" = "$ISBOT_PKG@$ISBOT_VERSION" ] || return 1
  [ "$(stamp_get isbot_tarball_sha256)" = "$ISBOT_TARBALL_SHA256" ] || return 1
  local f want
  for f in "$CRAWLERS_OUT" "$BROWSERS_OUT" "$ISBOT_OUT"; do
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

TMP="$(mktemp -d "${TMPDIR:-/tmp}/clickgate-bots.XXXXXX")"
cleanup() {
  rm -rf -- "$TMP"
  rm -f -- "$HERE/.$CRAWLERS_OUT.partial" "$HERE/.$BROWSERS_OUT.partial" "$HERE/.$ISBOT_OUT.partial" "$STAMP.partial"
  rm -rf -- "$HERE/.eval.partial"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# verify FILE SHA256: stop unless FILE has that sha256.
verify() {
  local file=$1 want=$2 actual
  actual=$(sha256_of "$file")
  if [ "$actual" != "$want" ]; then
    die "checksum mismatch for $(basename -- "$file")
  expected sha256 $want
  got      sha256 $actual
If you are deliberately bumping the version, put the new value in the matching *_SHA256."
  fi
  log "$(basename -- "$file") sha256 verified"
}

# npm_pack_verified NAME VERSION SHA256 DESTDIR: npm pack, verify, untar into DESTDIR.
npm_pack_verified() {
  local name=$1 version=$2 want=$3 dest=$4 tgz
  log "fetching $name@$version with npm pack"
  tgz=$(cd "$TMP" && npm pack --silent --loglevel=error "$name@$version" | tail -n1)
  [ -f "$TMP/$tgz" ] || die "npm pack $name@$version did not produce a tarball (got '$tgz')"
  verify "$TMP/$tgz" "$want"
  mkdir -p "$dest"
  tar -xzf "$TMP/$tgz" -C "$dest"
}

# The evaluation corpora (eval/, see README.md): fetched, verified and labelled into
# one agent per line files, then renamed into place as a whole.
EVAL_DIR="$HERE/eval"
EVAL_STAMP="isbot=$ISBOT_VERSION yaml=$YAML_VERSION uap=$UAP_VERSION fake=$FAKE_VERSION detect=$DETECT_VERSION dd=$DD_VERSION randomua=$RANDOMUA_VERSION woothee=$WOOTHEE_VERSION label=$(sha256_of "$HERE/label.js")"
fetch_eval() {
  if [ "$FORCE" -eq 0 ] && [ -f "$EVAL_DIR/.fetched" ] && [ "$(cat -- "$EVAL_DIR/.fetched")" = "$EVAL_STAMP" ]; then
    log "evaluation corpora already present; nothing to do"
    return 0
  fi
  ensure_npm
  command -v python3 >/dev/null 2>&1 || die "python3 is required for --eval (pip download, unzip)"
  local out="$HERE/.eval.partial"
  rm -rf -- "$out"; mkdir -p "$out/isbot"
  npm_pack_verified "$ISBOT_PKG" "$ISBOT_VERSION" "$ISBOT_TARBALL_SHA256" "$TMP/isbot-eval"
  cp -- "$TMP/isbot-eval/package/index.js" "$TMP/isbot-eval/package/LICENSE" "$out/isbot/"
  npm_pack_verified "$YAML_PKG" "$YAML_VERSION" "$YAML_TARBALL_SHA256" "$TMP/yaml"

  log "fetching $UAP_DEB=$UAP_VERSION with apt-get download"
  mkdir -p "$TMP/deb"
  if ! (cd "$TMP/deb" && apt-get download "$UAP_DEB=$UAP_VERSION" >/dev/null 2>&1); then
    [ "$(id -u)" -eq 0 ] || die "apt-get download $UAP_DEB=$UAP_VERSION failed; run 'sudo apt-get update' and re-run"
    apt-get update >/dev/null || die "apt-get update failed"
    (cd "$TMP/deb" && apt-get download "$UAP_DEB=$UAP_VERSION") || die "apt-get download $UAP_DEB=$UAP_VERSION failed"
  fi
  local deb
  deb=$(find "$TMP/deb" -name '*.deb' | head -n1)
  [ -n "$deb" ] || die "apt-get download produced no .deb"
  verify "$deb" "$UAP_DEB_SHA256"
  dpkg-deb -x "$deb" "$TMP/uap"

  log "fetching $FAKE_PYPI==$FAKE_VERSION with pip download"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$TMP/whl" "$FAKE_PYPI==$FAKE_VERSION" \
    || die "pip download $FAKE_PYPI==$FAKE_VERSION failed"
  local whl
  whl=$(find "$TMP/whl" -name '*.whl' | head -n1)
  [ -n "$whl" ] || die "pip download produced no wheel"
  verify "$whl" "$FAKE_WHEEL_SHA256"
  python3 -m zipfile -e "$whl" "$TMP/fake"

  log "fetching $DETECT_PYPI==$DETECT_VERSION with pip download (the source archive, for its test fixtures)"
  python3 -m pip download --quiet --no-deps --no-binary=:all: --dest "$TMP/sdist" "$DETECT_PYPI==$DETECT_VERSION" \
    || die "pip download $DETECT_PYPI==$DETECT_VERSION failed"
  local sdist
  sdist=$(find "$TMP/sdist" -name '*.tar.gz' | head -n1)
  [ -n "$sdist" ] || die "pip download produced no source archive"
  verify "$sdist" "$DETECT_SDIST_SHA256"
  mkdir -p "$TMP/detect"
  tar -xzf "$sdist" -C "$TMP/detect"
  local fixtures="$TMP/detect/$DETECT_PYPI-$DETECT_VERSION/tests/fixtures/user_agent"
  grep -v '^[[:space:]]*$' "$fixtures/crawlers.txt" | sort -u > "$out/crawlerdetect.bots.txt"
  grep -v '^[[:space:]]*$' "$fixtures/devices.txt" | sort -u > "$out/crawlerdetect.browsers.txt"
  cp -- "$TMP/detect/$DETECT_PYPI-$DETECT_VERSION/LICENSE" "$out/crawlerdetect.LICENSE"

  log "fetching $DD_PYPI==$DD_VERSION with pip download (the source archive, for Matomo's test fixtures)"
  python3 -m pip download --quiet --no-deps --no-binary=:all: --dest "$TMP/dd-sdist" "$DD_PYPI==$DD_VERSION" \
    || die "pip download $DD_PYPI==$DD_VERSION failed"
  sdist=$(find "$TMP/dd-sdist" -name '*.tar.gz' | head -n1)
  [ -n "$sdist" ] || die "pip download produced no source archive"
  verify "$sdist" "$DD_SDIST_SHA256"
  mkdir -p "$TMP/dd"
  tar -xzf "$sdist" -C "$TMP/dd"
  local dd_fixtures="$TMP/dd/$DD_PYPI-$DD_VERSION/$DD_PYPI/tests/fixtures/upstream"
  [ -f "$dd_fixtures/bots.yml" ] || die "$DD_PYPI==$DD_VERSION has no tests/fixtures/upstream/bots.yml"

  npm_pack_verified "$RANDOMUA_PKG" "$RANDOMUA_VERSION" "$RANDOMUA_TARBALL_SHA256" "$TMP/randomua"
  npm_pack_verified "$WOOTHEE_PKG" "$WOOTHEE_VERSION" "$WOOTHEE_TARBALL_SHA256" "$TMP/woothee"

  node "$HERE/label.js" "$TMP/yaml/package/dist/js-yaml.js" "$TMP/uap/usr/share/uap-core" \
    "$TMP/fake/fake_useragent/data/browsers.jsonl" "$dd_fixtures" \
    "$TMP/randomua/package/useragent-data.json" "$TMP/woothee/package/woothee/testsets" "$out"
  echo "$EVAL_STAMP" > "$out/.fetched"
  rm -rf -- "$EVAL_DIR"
  mv -- "$out" "$EVAL_DIR"
  log "evaluation corpora installed into $EVAL_DIR"
}

if [ "$FORCE" -eq 0 ] && is_up_to_date; then
  log "$CRAWLERS_PKG@$CRAWLERS_VERSION, $BROWSERS_PKG@$BROWSERS_VERSION and $ISBOT_PKG@$ISBOT_VERSION already present and verified; nothing to do"
  report "up-to-date"
  if [ "$EVAL" -eq 1 ]; then fetch_eval; fi
  exit 0
fi

ensure_npm

npm_pack_verified "$CRAWLERS_PKG" "$CRAWLERS_VERSION" "$CRAWLERS_TARBALL_SHA256" "$TMP/crawlers"
npm_pack_verified "$BROWSERS_PKG" "$BROWSERS_VERSION" "$BROWSERS_TARBALL_SHA256" "$TMP/browsers"
npm_pack_verified "$ISBOT_PKG" "$ISBOT_VERSION" "$ISBOT_TARBALL_SHA256" "$TMP/isbot"

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

# --- isbot-patterns.json: isbot's exported pattern list --------------------
isbot_src="$TMP/isbot/package/index.js"
[ -s "$isbot_src" ] || die "$ISBOT_PKG tarball has no index.js"
node - "$isbot_src" "$HERE/.$ISBOT_OUT.partial" <<'JS'
const fs = require('fs');
const [src, out] = process.argv.slice(2);
const list = require(src).list;
if (!Array.isArray(list) || list.length === 0 || !list.every((p) => typeof p === 'string' && p !== ''))
  throw new Error('isbot does not export a non-empty list of pattern strings');
for (const p of list) new RegExp(p, 'i');
fs.writeFileSync(out, JSON.stringify(list, null, 1) + '\n');
console.error(`bots: ${list.length} isbot patterns checked`);
JS

{
  echo "# written by config/bots/fetch.sh; do not edit"
  echo "crawlers=$CRAWLERS_PKG@$CRAWLERS_VERSION"
  echo "crawlers_tarball_sha256=$CRAWLERS_TARBALL_SHA256"
  echo "browsers=$BROWSERS_PKG@$BROWSERS_VERSION"
  echo "browsers_tarball_sha256=$BROWSERS_TARBALL_SHA256"
  echo "isbot=$ISBOT_PKG@$ISBOT_VERSION"
  echo "isbot_tarball_sha256=$ISBOT_TARBALL_SHA256"
  echo "$CRAWLERS_OUT=$(sha256_of "$HERE/.$CRAWLERS_OUT.partial")"
  echo "$BROWSERS_OUT=$(sha256_of "$HERE/.$BROWSERS_OUT.partial")"
  echo "$ISBOT_OUT=$(sha256_of "$HERE/.$ISBOT_OUT.partial")"
} > "$STAMP.partial"
chmod 0644 "$HERE/.$CRAWLERS_OUT.partial" "$HERE/.$BROWSERS_OUT.partial" "$HERE/.$ISBOT_OUT.partial"
mv -f -- "$HERE/.$CRAWLERS_OUT.partial" "$HERE/$CRAWLERS_OUT"
mv -f -- "$HERE/.$BROWSERS_OUT.partial" "$HERE/$BROWSERS_OUT"
mv -f -- "$HERE/.$ISBOT_OUT.partial" "$HERE/$ISBOT_OUT"
mv -f -- "$STAMP.partial" "$STAMP"

log "installed into $HERE"
report "fetched"
if [ "$EVAL" -eq 1 ]; then fetch_eval; fi
