//! A link's QR code: `GET /v1/links/{code}/qr.svg` and `GET /v1/links/{code}/qr.png?size=`,
//! encoding the link's `/q/{code}` URL on `api.edge_public_url`, so a scan is counted as the
//! QR channel's. `qrcode` makes the modules; both images are drawn here, the PNG as one bit a
//! pixel in stored (uncompressed) deflate blocks, which needs no image or zlib crate.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use qrcode::{Color, QrCode};

use super::{on_store, refused, Access};
use crate::api::commissions::Params;
use crate::api::{ApiError, ApiResult, ApiState};
use crate::catalog::Catalogue;

/// The PNG's side in pixels when `size` is not given.
pub const PNG_SIZE_DEFAULT: u32 = 256;
/// The smallest and largest `size`: a code of the longest link URL stays readable at the
/// smallest, and the largest bounds the answer to about 130 KiB.
pub const PNG_SIZE_MIN: u32 = 64;
pub const PNG_SIZE_MAX: u32 = 2048;
/// Light modules around the code, as the QR standard asks.
const QUIET_MODULES: usize = 4;

/// Which image a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

pub async fn get(state: &Arc<ApiState>, code: &str, format: Format, query: &str) -> ApiResult {
    let size = match format {
        Format::Png => png_size(query)?,
        Format::Svg => {
            Params::parse(query, &[])?;
            0
        }
    };
    let key = code.to_string();
    let link = on_store(state, Access::Read, move |s| s.get_link(&key).map_err(refused("code"))).await?;
    let url = format!("{}/q/{}", state.config.edge_public_url.trim_end_matches('/'), link.spec.code);
    let qr = QrCode::new(url.as_bytes()).map_err(|e| ApiError::invalid("code", format!("the link's URL does not fit a QR code: {e}")))?;
    let (body, kind) = match format {
        Format::Svg => (svg(&qr).into_bytes(), "image/svg+xml"),
        Format::Png => (png(&qr, size), "image/png"),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    Ok(r)
}

/// `size`: `PNG_SIZE_MIN..=PNG_SIZE_MAX` pixels, `PNG_SIZE_DEFAULT` when absent.
fn png_size(query: &str) -> Result<u32, ApiError> {
    let p = Params::parse(query, &["size"])?;
    let ok = |s: &str| s.parse::<u32>().is_ok_and(|n| (PNG_SIZE_MIN..=PNG_SIZE_MAX).contains(&n));
    let must = format!("an integer in {PNG_SIZE_MIN}..={PNG_SIZE_MAX} (pixels)");
    Ok(p.get("size", ok, &must)?.and_then(|s| s.parse().ok()).unwrap_or(PNG_SIZE_DEFAULT))
}

/// The modules with their quiet zone, row by row: `true` is dark.
fn modules(qr: &QrCode) -> (usize, Vec<bool>) {
    let (w, colors) = (qr.width(), qr.to_colors());
    let side = w + 2 * QUIET_MODULES;
    let mut out = vec![false; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            out[(i / w + QUIET_MODULES) * side + i % w + QUIET_MODULES] = true;
        }
    }
    (side, out)
}

/// One path of unit squares, one a dark module, on a viewBox of modules: it scales to any size.
pub fn svg(qr: &QrCode) -> String {
    let (side, dark) = modules(qr);
    let mut path = String::with_capacity(dark.len() * 4);
    for (i, _) in dark.iter().enumerate().filter(|(_, d)| **d) {
        path.push_str(&format!("M{} {}h1v1h-1z", i % side, i / side));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>\n"
    )
}

/// A `size`×`size` one-bit grayscale PNG; each pixel takes the module under it, so modules
/// differ by at most a pixel when `size` is not a multiple of the modules.
pub fn png(qr: &QrCode, size: u32) -> Vec<u8> {
    let (side, dark) = modules(qr);
    let px = size as usize;
    let row_bytes = px.div_ceil(8);
    let mut raw = Vec::with_capacity((row_bytes + 1) * px);
    for y in 0..px {
        raw.push(0); // filter: none
        let my = y * side / px;
        let mut row = vec![0xffu8; row_bytes];
        for x in 0..px {
            if dark[my * side + x * side / px] {
                row[x / 8] &= !(0x80u8 >> (x % 8));
            }
        }
        raw.extend_from_slice(&row);
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // bit depth 1, grayscale, deflate, adaptive filters, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).expect("a chunk under 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored deflate blocks: a two-colour image of at most 2048² pixels is about
/// half a megabit, small enough to send uncompressed.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(0xffff).collect() };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(block.len()).expect("blocks of at most 65535 bytes");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_png_is_the_size_asked_with_its_chunks_checked() {
        let qr = QrCode::new(b"http://localhost:8080/q/spring").unwrap();
        for size in [PNG_SIZE_MIN, 100, PNG_SIZE_DEFAULT, PNG_SIZE_MAX] {
            let png = png(&qr, size);
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            assert_eq!(&png[12..16], b"IHDR");
            assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), size);
            assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), size);
            let mut at = 8;
            let mut kinds = Vec::new();
            while at < png.len() {
                let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
                let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
                assert_eq!(crc32fast::hash(&png[at + 4..at + 8 + len]), crc);
                kinds.push(String::from_utf8(png[at + 4..at + 8].to_vec()).unwrap());
                at += 12 + len;
            }
            assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        }
    }

    #[test]
    fn the_svg_draws_every_dark_module_once() {
        let qr = QrCode::new(b"http://localhost:8080/q/spring").unwrap();
        let text = svg(&qr);
        let dark = qr.to_colors().iter().filter(|c| **c == Color::Dark).count();
        assert_eq!(text.matches("h1v1h-1z").count(), dark);
        let side = qr.width() + 2 * QUIET_MODULES;
        assert!(text.contains(&format!("viewBox=\"0 0 {side} {side}\"")), "{text}");
        assert!(text.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_stored_stream_carries_its_checksum() {
        let z = zlib_stored(b"abc");
        assert_eq!(z, [0x78, 0x01, 1, 3, 0, 0xfc, 0xff, b'a', b'b', b'c', 0x02, 0x4d, 0x01, 0x27]);
        assert_eq!(zlib_stored(&vec![7; 70_000]).len(), 2 + 2 * 5 + 70_000 + 4);
    }
}
