#!/usr/bin/env bash
# Installs what tests/openapi.rs checks the API's OpenAPI document with: PyPI
# `openapi-spec-validator` and `schemathesis` into a venv under the cargo target dir, pinned by
# version and sha256 with everything they need (requirements.txt beside this script), with
# tests/pyvenv.sh.
#
# Exit codes, read by tests/openapi.rs: those of tests/pyvenv.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${CLICKGATE_OPENAPI_VENV:-${CARGO_TARGET_DIR:-$root/target}/openapi-venv}
exec "$root/tests/pyvenv.sh" "$venv" "$here/requirements.txt" schemathesis schemathesis
