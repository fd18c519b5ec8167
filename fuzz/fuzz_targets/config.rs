//! Config text into `Config::parse`: TOML parsing, defaults and `validate` never panic; a bad
//! file is an error naming its key.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = clickgate::config::Config::parse(text, Path::new("fuzz.toml"));
});
