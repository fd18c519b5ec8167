#!/usr/bin/env bash
# Installs PyPI `standardwebhooks` 1.1.0, the reference verifier of tests/webhooks_e2e.rs's
# receiver, into a venv under the cargo target dir, pinned by version and sha256
# (requirements.txt beside this script). Idempotent: a venv that already holds exactly this pin
# is left alone.
#
# Exit codes, read by tests/webhooks_e2e.rs:
#   0  installed, or already installed
#   1  a real failure (a hash mismatch, a broken venv)
#   3  python3, its venv module or pip is missing here
#   4  pip could not fetch the package (no network or registry)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${CLICKGATE_WEBHOOKS_VENV:-${CARGO_TARGET_DIR:-$root/target}/webhooks-venv}
requirements=$here/requirements.txt
pin=$(sed -n 's/^standardwebhooks==\([^ ]*\).*/\1/p' "$requirements")
# The stamp is the hash of the requirements file: any change to the pin reinstalls.
want_stamp=$(sha256sum "$requirements" | cut -d' ' -f1)

installed_version() {
    "$venv/bin/python" -c 'import importlib.metadata as m, standardwebhooks; print(m.version("standardwebhooks"))' 2>/dev/null
}

if [[ -x $venv/bin/python && "$(cat "$venv/.requirements.sha256" 2>/dev/null)" == "$want_stamp" && "$(installed_version)" == "$pin" ]]; then
    echo "fetch.sh: standardwebhooks $pin already installed in $venv"
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "fetch.sh: python3 not found" >&2
    exit 3
fi
if [[ ! -x $venv/bin/python ]]; then
    echo "fetch.sh: creating a venv in $venv"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2; then
        rm -rf "$venv"
        echo "fetch.sh: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        exit 3
    fi
fi
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "fetch.sh: the venv has no pip" >&2
    exit 3
fi

echo "fetch.sh: installing standardwebhooks $pin (pinned by sha256)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --require-hashes --only-binary=:all: \
    -r "$requirements" >"$log" 2>&1; then
    cat "$log" >&2
    if grep -q 'DO NOT MATCH THE HASHES\|hash-checking mode' "$log"; then
        echo "fetch.sh: the package did not match its pinned hash" >&2
        exit 1
    fi
    echo "fetch.sh: pip could not install the pinned package (is the package registry reachable?)" >&2
    exit 4
fi
got=$(installed_version || true)
if [[ $got != "$pin" ]]; then
    echo "fetch.sh: expected standardwebhooks $pin, the venv has '${got}'" >&2
    exit 1
fi
echo "$want_stamp" >"$venv/.requirements.sha256"
echo "fetch.sh: installed standardwebhooks $pin in $venv"
