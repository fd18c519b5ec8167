//! The spool's small files and segment files: creating and removing segments, the durable
//! cursor and id (temp file, fsync, rename), and cutting a torn tail off the newest segment.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::frames::{walk, Step};
use super::{io_at, segment_path, SpoolError, CURSOR_FILE, CURSOR_TMP_FILE, ID_FILE, ID_TMP_FILE};

pub(super) fn create_segment(dir: &Path, start: u64) -> Result<File, SpoolError> {
    let path = segment_path(dir, start);
    // `create`, not `create_new`: a leftover empty file from a crash right after a roll is fine
    // to reuse, and no segment with readable data can start at or after the end of the spool.
    let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_at(&path))?;
    sync_dir(dir)?;
    Ok(file)
}

pub(super) fn remove_segment(dir: &Path, start: u64) {
    let path = segment_path(dir, start);
    if let Err(e) = std::fs::remove_file(&path) {
        // It is out of the segment list either way; the next open finds it behind the cursor
        // and tries again.
        tracing::warn!(path = %path.display(), error = %e, "could not delete a fully read spool segment");
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir))
}

pub(super) fn read_cursor(dir: &Path) -> Result<u64, SpoolError> {
    let path = dir.join(CURSOR_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(SpoolError::Io { path, source: e }),
    };
    if bytes.len() == 12 && crc32fast::hash(&bytes[..8]).to_le_bytes() == bytes[8..12] {
        return Ok(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
    }
    // Written by rename, so this is damage, not a crash. Reading from the oldest segment
    // delivers some events again, which downstream drops by click id; nothing is lost.
    tracing::error!(path = %path.display(), "spool cursor file is corrupt; re-reading the spool from its oldest segment");
    Ok(0)
}

/// The id in `dir/id`, or a new random one written there durably when the file is missing.
pub(super) fn read_or_create_id(dir: &Path) -> Result<u64, SpoolError> {
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            return match u64::from_str_radix(text, 16) {
                Ok(id) if text.len() == 16 => Ok(id),
                // Written by rename, so this is damage. A made-up id could repeat message ids
                // another spool used; refusing to start is the safe answer.
                _ => Err(SpoolError::BadId(path)),
            };
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SpoolError::Io { path, source: e }),
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(SpoolError::NoRandomness)?;
    let id = u64::from_le_bytes(bytes);
    let tmp = dir.join(ID_TMP_FILE);
    let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
    f.write_all(format!("{id:016x}\n").as_bytes()).and_then(|()| f.sync_all()).map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
    sync_dir(dir)?;
    Ok(id)
}

pub(super) fn write_cursor(dir: &Path, pos: u64) -> Result<(), SpoolError> {
    let tmp = dir.join(CURSOR_TMP_FILE);
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&pos.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..8]);
    bytes[8..].copy_from_slice(&crc.to_le_bytes());
    let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_at(&tmp))?;
    let path = dir.join(CURSOR_FILE);
    std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
    sync_dir(dir)
}

/// Cuts whatever follows the last intact frame of the newest segment; returns its new length.
pub(super) fn cut_torn_tail(path: &Path, file_len: u64) -> Result<u64, SpoolError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(io_at(path))?;
    let mut good = 0;
    let mut buf = Vec::new();
    walk(&mut file, 0, 0, file_len, &mut buf, &mut |step| {
        if let Step::Frame { end, .. } = step {
            good = end;
        }
        true
    })
    .map_err(io_at(path))?;
    if good < file_len {
        tracing::warn!(path = %path.display(), torn_bytes = file_len - good, "spool segment ends in a torn frame (a crash mid-write); cutting it off");
        file.set_len(good).map_err(io_at(path))?;
    }
    Ok(good)
}
