//! The process's data key, loaded once at start by the store's open and read by the backends'
//! row mappings, as the per-process hash seed is: every value a store seals or opens in this
//! process uses it.
//!
//! Where it comes from, first found wins: `CLICKGATE_DATA_KEY` (64 hex digits, or the
//! standard base64 of 32 bytes); the data dir's `data.key` (64 hex digits); else, when the
//! store holds no sealed value yet, a new random key written to `data.key` with mode 0600 and
//! a warning in the log, so `clickgate serve` on a fresh machine needs no setup. A store that
//! records a key id and finds no key refuses to start: its values would not open.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{DataKey, PrivacyError};

/// The variable the data key is read from.
pub const ENV: &str = "CLICKGATE_DATA_KEY";
/// The variable `clickgate data-key rotate` reads the new key from.
pub const ENV_NEW: &str = "CLICKGATE_DATA_KEY_NEW";
/// The key file's name in the data dir, used when `ENV` is not set.
pub const FILE: &str = "data.key";

static CURRENT: OnceLock<DataKey> = OnceLock::new();

/// Makes `key` the process's data key. Loading the same key again is a no-op; another key is
/// refused, as values sealed under the first would no longer open.
pub fn install(key: DataKey) -> Result<&'static DataKey, PrivacyError> {
    let installed = CURRENT.get_or_init(|| key.clone());
    if installed.id_hex() != key.id_hex() {
        return Err(PrivacyError::Conflict { installed: installed.id_hex() });
    }
    Ok(installed)
}

/// The process's data key.
pub fn current() -> Result<&'static DataKey, PrivacyError> {
    #[cfg(test)]
    {
        // Unit tests open stores without the app's start: they share one fixed key.
        return Ok(CURRENT.get_or_init(|| DataKey::from_bytes(&[7u8; 32])));
    }
    #[allow(unreachable_code)]
    CURRENT.get().ok_or(PrivacyError::NotLoaded)
}

/// The key file's path in `data_dir`.
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The key in the variable `name`, if it is set.
pub fn from_env(name: &str) -> Result<Option<DataKey>, PrivacyError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => DataKey::parse(&v).map(Some).map_err(|e| PrivacyError::BadKey(format!("{name}: {e}"))),
        _ => Ok(None),
    }
}

/// The key in the data dir's file, if there is one.
pub fn from_file(data_dir: &Path) -> Result<Option<DataKey>, PrivacyError> {
    let path = file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            DataKey::parse(&text).map(Some).map_err(|e| PrivacyError::KeyFile { file: path.display().to_string(), why: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PrivacyError::KeyFile { file: path.display().to_string(), why: e.to_string() }),
    }
}

/// The data key for the store under `data_dir` that records `recorded` (its key id, if it
/// has sealed anything): the variable, the file, or a new key written to the file.
pub fn resolve(data_dir: &Path, recorded: Option<&str>) -> Result<DataKey, PrivacyError> {
    if let Some(k) = from_env(ENV)? {
        return Ok(k);
    }
    if let Some(k) = from_file(data_dir)? {
        return Ok(k);
    }
    let path = file(data_dir);
    if let Some(recorded) = recorded {
        return Err(PrivacyError::NoKey { recorded: recorded.to_string(), file: path.display().to_string() });
    }
    let hex = DataKey::generate_hex()?;
    write_new(&path, &hex)?;
    tracing::warn!(
        file = %path.display(),
        "no CLICKGATE_DATA_KEY: generated a data key into the data dir. Personal data is encrypted, but the key sits \
         beside it; for production set CLICKGATE_DATA_KEY and move the key off this disk (docs/operations.md, Data at rest)"
    );
    DataKey::parse(&hex)
}

/// Writes a new key file, readable by its owner only; refuses to overwrite one.
pub fn write_new(path: &Path, hex: &str) -> Result<(), PrivacyError> {
    let fail = |e: std::io::Error| PrivacyError::KeyFile { file: path.display().to_string(), why: e.to_string() };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(fail)?;
    f.write_all(format!("{hex}\n").as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// Replaces the key file with `hex` (a rotation that started from the file), atomically.
pub fn replace(path: &Path, hex: &str) -> Result<(), PrivacyError> {
    let tmp = path.with_extension("key.new");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, hex)?;
    std::fs::rename(&tmp, path).map_err(|e| PrivacyError::KeyFile { file: path.display().to_string(), why: e.to_string() })
}
