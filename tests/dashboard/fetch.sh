#!/usr/bin/env bash
# Installs what tests/dashboard.rs drives the dashboard with: npm `playwright-core`, pinned by
# package-lock.json beside this script, with `npm ci` into a directory under the cargo target
# dir; and Debian's `chromium`, with apt-get when /usr/bin/chromium is missing and this is root.
# Playwright never downloads a browser of its own (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1): the test
# launches /usr/bin/chromium.
#
# Prints the install directory (its node_modules holds playwright-core) on stdout.
# Exit codes, read by tests/dashboard.rs:
#   0  installed, or already installed
#   1  a real failure
#   3  node, npm or chromium is missing here and cannot be installed
#   4  npm could not fetch the package (no network or registry)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
dest=${CLICKGATE_DASHBOARD_NODE:-${CARGO_TARGET_DIR:-$root/target}/dashboard-node}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

apt_install() {   # apt_install PACKAGE
    [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
    echo "fetch.sh: installing $1 (apt-get install $1)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$1" >&2 \
        || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "$1" >&2; }
}
if [[ ! -x /usr/bin/chromium ]]; then
    apt_install chromium || { echo "fetch.sh: /usr/bin/chromium is missing (on Debian: apt-get install chromium)" >&2; exit 3; }
fi
if ! command -v npm >/dev/null 2>&1; then
    apt_install npm || { echo "fetch.sh: node and npm are missing (on Debian: apt-get install npm)" >&2; exit 3; }
fi

# The stamp is the lock file's hash: a change to the pin reinstalls.
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [[ -f $dest/node_modules/playwright-core/package.json && "$(cat "$dest/.lock.sha256" 2>/dev/null)" == "$want" ]]; then
    echo "$dest"
    exit 0
fi
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
if ! (cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund >&2); then
    echo "fetch.sh: npm ci could not install playwright-core (is the npm registry reachable?)" >&2
    exit 4
fi
echo "$want" >"$dest/.lock.sha256"
echo "$dest"
