//! The API's QR images read back by a real decoder: PyPI `zxing-cpp` (installed by
//! tests/qr/fetch.sh into a venv under the target dir) decodes the PNG, and the SVG once
//! `rsvg-convert` has rasterised it, each to the link's exact `/q/{code}` URL.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const KEY: &str = "qr-decode-admin-key-0123";

/// Fails the test: the decoder cannot run here, and why.
fn unavailable(why: &str) -> ! {
    panic!(
        "this test needs PyPI zxing-cpp and pillow, installed by tests/qr/fetch.sh into a venv under the target dir, \
         and rsvg-convert (Debian: librsvg2-bin): {why}\nInstall python3 with its venv module and pip and let the \
         first run reach the package registry, or run cargo test without --include-ignored: it lists this test as ignored"
    )
}

/// The venv's python, installing the pinned decoder first.
fn venv_python() -> PathBuf {
    pinned_venv_python("tests/qr/fetch.sh", "CLICKGATE_QR_VENV", "qr-venv", unavailable)
}

fn image(s: &Server, path: &str, content_type: &str) -> Vec<u8> {
    let (head, body) = get_bytes(s.api, path, &[&format!("Authorization: Bearer {KEY}")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    assert!(head.to_ascii_lowercase().contains(&format!("content-type: {content_type}")), "{path}: {head}");
    body
}

#[test]
#[ignore = "needs PyPI zxing-cpp (tests/qr/fetch.sh installs it) and rsvg-convert; run with --include-ignored"]
fn qr_images_decode_to_the_links_q_url() {
    let python = venv_python();
    let base = "https://go.example.com";
    let s = Server::start(&fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\nedge_public_url = \"{base}\"\n")));
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for size in [128, 512] {
        let png = dir.path().join(format!("demo-{size}.png"));
        std::fs::write(&png, image(&s, &format!("/v1/links/demo/qr.png?size={size}"), "image/png")).unwrap();
        files.push(png);
    }
    let svg = dir.path().join("demo.svg");
    std::fs::write(&svg, image(&s, "/v1/links/demo/qr.svg", "image/svg+xml")).unwrap();
    let rasterised = dir.path().join("demo-svg.png");
    let rsvg = Command::new("rsvg-convert")
        .args(["--width", "400", "--height", "400", "--background-color", "white", "--output"])
        .arg(&rasterised)
        .arg(&svg)
        .output()
        .unwrap_or_else(|e| unavailable(&format!("cannot run rsvg-convert: {e}")));
    assert!(rsvg.status.success(), "rsvg-convert: {}", String::from_utf8_lossy(&rsvg.stderr));
    files.push(rasterised);

    let out = Command::new(&python).arg(Path::new(ROOT).join("tests/qr/decode.py")).args(&files).output().unwrap();
    assert!(out.status.success(), "decode.py: {}", String::from_utf8_lossy(&out.stderr));
    let decoded: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    assert_eq!(decoded, vec![format!("{base}/q/demo"); files.len()], "each image holds the link's /q/ URL exactly");
}
