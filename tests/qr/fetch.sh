#!/usr/bin/env bash
# Installs what tests/qr_decode.rs decodes the API's QR images with: PyPI `zxing-cpp` and
# `pillow` into a venv under the cargo target dir, pinned by version and sha256
# (requirements.txt beside this script), with tests/pyvenv.sh; and `rsvg-convert` (Debian's
# librsvg2-bin), which rasterises the SVG, with apt-get when it is missing and this is root.
#
# Exit codes, read by tests/qr_decode.rs: those of tests/pyvenv.sh, and 3 when rsvg-convert is
# missing and cannot be installed here.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${CLICKGATE_QR_VENV:-${CARGO_TARGET_DIR:-$root/target}/qr-venv}
if ! command -v rsvg-convert >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "fetch.sh: installing rsvg-convert (apt-get install librsvg2-bin)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends librsvg2-bin >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends librsvg2-bin >&2; } \
            || { echo "fetch.sh: apt-get could not install librsvg2-bin" >&2; exit 3; }
    else
        echo "fetch.sh: rsvg-convert is missing (on Debian: apt-get install librsvg2-bin)" >&2
        exit 3
    fi
fi
exec "$root/tests/pyvenv.sh" "$venv" "$here/requirements.txt" zxing-cpp zxingcpp
