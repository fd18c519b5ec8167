#!/usr/bin/env bash
# Installs PyPI `standardwebhooks` 1.1.0, the reference verifier of tests/webhooks_e2e.rs's
# receiver, into a venv under the cargo target dir, pinned by version and sha256
# (requirements.txt beside this script), with tests/pyvenv.sh (its exit codes are read by
# tests/webhooks_e2e.rs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${CLICKGATE_WEBHOOKS_VENV:-${CARGO_TARGET_DIR:-$root/target}/webhooks-venv}
exec "$root/tests/pyvenv.sh" "$venv" "$here/requirements.txt" standardwebhooks standardwebhooks
