"""Decodes each QR image named on the command line (PNG) and prints its text, one line per
file; a file with no QR code, or more than one, fails. Used by tests/qr_decode.rs."""
import sys

import zxingcpp
from PIL import Image

for path in sys.argv[1:]:
    found = zxingcpp.read_barcodes(Image.open(path).convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    if len(found) != 1:
        sys.exit(f"decode.py: {path}: {len(found)} QR codes found, want 1")
    print(found[0].text)
