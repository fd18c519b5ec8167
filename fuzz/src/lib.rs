//! What the fuzz targets share: their scratch directories, and the data key their catalogues
//! seal partners' personal fields under.

use std::path::{Path, PathBuf};

/// A fresh scratch directory for this process, `clickgate-fuzz-{label}-{pid}`, on tmpfs where
/// there is one: the spool and SQLite fsync, and on a disk that alone holds a target to a few
/// hundred inputs a second. Directories a finished run left (their process is gone) are
/// removed first, so campaigns do not pile them up.
pub fn scratch_dir(label: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let prefix = format!("clickgate-fuzz-{label}-");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    // A server's start loads the data key before it opens a store; the seeded partners' e-mail
    // fields are sealed under it, so a target that opens a catalogue holds a fixed one.
    clickgate::privacy::keys::install(clickgate::privacy::DataKey::from_bytes(&[0x5a; 32]))
        .expect("one data key for the fuzz process");
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
