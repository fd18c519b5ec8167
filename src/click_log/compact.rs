//! Compaction: several small sealed segments rewritten as one, duplicate click ids dropped.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::{frames, sync_dir, SegmentMeta};
use crate::model::ClickId;

/// Merges `group` (adjacent sealed segments, oldest first) into one durable file named for
/// their whole range, keeping the first frame of each click id. The originals are left alone:
/// `SegmentLog::install_merged` swaps them out. Reads only sealed, immutable files, so it may
/// run without the log's lock.
pub fn merge_segments(dir: &Path, group: &[SegmentMeta]) -> io::Result<SegmentMeta> {
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        return Err(io::Error::other("nothing to merge"));
    };
    debug_assert!(group.windows(2).all(|w| w[0].last < w[1].first), "segments in order");
    let mut merged = SegmentMeta { first: first.first, last: last.last, ..SegmentMeta::new(first.first) };
    let final_path = dir.join(merged.file_name());
    let tmp_path = final_path.with_extension("tmp");
    let file = OpenOptions::new().create(true).write(true).truncate(true).open(&tmp_path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut seen: HashSet<ClickId> = HashSet::with_capacity(group.iter().map(|s| s.events as usize).sum());
    let mut dropped = 0u64;
    for seg in group {
        let mut write_err = Ok(());
        let scan = frames::scan(&dir.join(seg.file_name()), |frame, ev| {
            if write_err.is_err() {
                return;
            }
            // A frame that does not decode is copied as it is: compaction never loses data.
            if let Some(ev) = &ev {
                if !seen.insert(ev.click_id) {
                    dropped += 1;
                    return;
                }
                merged.add_ts(ev.ts_ms);
                merged.events += 1;
            }
            merged.bytes += frame.len() as u64;
            write_err = out.write_all(frame);
        })?;
        write_err?;
        if scan.bad.is_some() {
            // The segment changed on disk since it was opened: refuse rather than drop its tail.
            drop(out);
            fs::remove_file(&tmp_path)?;
            return Err(io::Error::other(format!("click log segment {} has a bad frame; not compacting it", seg.file_name())));
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp_path, &final_path)?;
    sync_dir(dir)?;
    tracing::info!(segment = %merged.file_name(), merged = group.len(), events = merged.events, duplicates_dropped = dropped, "click log segments compacted");
    Ok(merged)
}
