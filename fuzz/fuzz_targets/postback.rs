//! A postback's query through the signature parsing the handler does: percent-decoding,
//! `canonical`, `sign` and the 64-hex-digit `sig` (`api::hex32`). A signature the project
//! makes must parse back; any other input must not panic.
#![no_main]

use clickgate::api::hex32;
use clickgate::api::postback::{canonical, sign};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-postback-secret";

fuzz_target!(|data: &[u8]| {
    let params: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let _ = canonical(&params);
    let made = sign(SECRET, &params);
    assert_eq!(hex32(&made).map(hex_of), Some(made.clone()), "a signature the project makes parses back");
    if let Some((_, sig)) = params.iter().find(|(k, _)| k == "sig") {
        let _ = hex32(sig);
    }
});

fn hex_of(b: [u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
