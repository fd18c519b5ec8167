#!/usr/bin/env bash
# Installs pinned PyPI packages into a venv under the cargo target dir: the one installer behind
# tests/*/fetch.sh. Every package is pinned by version and sha256 in a requirements file and
# installed with `pip install --require-hashes --only-binary=:all:`. Idempotent: a venv whose
# stamp matches the requirements file and that holds the pinned version is left alone.
#
# Usage: tests/pyvenv.sh VENV REQUIREMENTS DIST IMPORT
#   VENV          the venv's directory
#   REQUIREMENTS  the pinned requirements file
#   DIST          the distribution whose installed version is checked against its pin
#   IMPORT        a module that must import once installed
#
# Exit codes, read by the tests that need these packages:
#   0  installed, or already installed
#   1  a real failure (a hash mismatch, a broken venv)
#   3  python3, its venv module or pip is missing here
#   4  pip could not fetch the packages (no network or registry)
set -euo pipefail

venv=$1 requirements=$2 dist=$3 module=$4
pin=$(sed -n "s/^${dist}==\([^ ]*\).*/\1/p" "$requirements")
[[ -n $pin ]] || { echo "pyvenv.sh: $requirements pins no $dist" >&2; exit 1; }
# The stamp is the hash of the requirements file: any change to the pins reinstalls.
want_stamp=$(sha256sum "$requirements" | cut -d' ' -f1)

installed_version() {
    "$venv/bin/python" -c "import importlib.metadata as m, $module; print(m.version('$dist'))" 2>/dev/null
}

if [[ -x $venv/bin/python && "$(cat "$venv/.requirements.sha256" 2>/dev/null)" == "$want_stamp" && "$(installed_version)" == "$pin" ]]; then
    echo "pyvenv.sh: $dist $pin already installed in $venv"
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "pyvenv.sh: python3 not found" >&2
    exit 3
fi
if [[ ! -x $venv/bin/python ]]; then
    echo "pyvenv.sh: creating a venv in $venv"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2; then
        rm -rf "$venv"
        echo "pyvenv.sh: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        exit 3
    fi
fi
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "pyvenv.sh: the venv has no pip" >&2
    exit 3
fi

echo "pyvenv.sh: installing $dist $pin (pinned by sha256, with what $requirements lists)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --require-hashes --only-binary=:all: \
    -r "$requirements" >"$log" 2>&1; then
    cat "$log" >&2
    if grep -q 'DO NOT MATCH THE HASHES\|hash-checking mode' "$log"; then
        echo "pyvenv.sh: a package did not match its pinned hash (another Python or platform needs its wheels' hashes in $requirements)" >&2
        exit 1
    fi
    echo "pyvenv.sh: pip could not install the pinned packages (is the package registry reachable?)" >&2
    exit 4
fi
got=$(installed_version || true)
if [[ $got != "$pin" ]]; then
    echo "pyvenv.sh: expected $dist $pin, the venv has '${got}'" >&2
    exit 1
fi
echo "$want_stamp" >"$venv/.requirements.sha256"
echo "pyvenv.sh: installed $dist $pin in $venv"
