#!/usr/bin/env bash
# Installs the attribution reference, PyPI `marketing-attribution-models`, into a venv under
# the cargo target dir, pinned by version and sha256 (requirements.txt beside this script), with
# tests/pyvenv.sh (its exit codes are read by tests/attribution_reference.rs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${CLICKGATE_REFERENCE_VENV:-${CARGO_TARGET_DIR:-$root/target}/reference-venv}
exec "$root/tests/pyvenv.sh" "$venv" "$here/requirements.txt" marketing-attribution-models mam
