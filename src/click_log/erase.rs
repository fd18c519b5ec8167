//! Erase: the segments holding some clicks rewritten with those clicks anonymised, for a
//! privacy erase. Each such segment is written whole as `.tmp`, fsynced and renamed over the
//! original, then the directory is fsynced: a crash leaves the original or the new file, and
//! `open` deletes a `.tmp` it finds, so an erase that did not finish is simply run again.

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};

use super::{frames, sync_dir, SegmentLog, SegmentMeta};
use crate::events::ClickEvent;

/// What an erase rewrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    /// Clicks anonymised.
    pub clicks: u64,
    /// Segment files rewritten.
    pub segments: u64,
}

impl SegmentLog {
    /// Rewrites every segment that holds a click `matches` picks, with `anonymise` applied to
    /// each such click; the others are copied as they are. Takes the log's lock in the caller,
    /// so appends wait (the active segment may be rewritten too).
    pub fn erase(&mut self, matches: impl Fn(&ClickEvent) -> bool, anonymise: impl Fn(&mut ClickEvent)) -> io::Result<Erased> {
        let mut out = Erased::default();
        let active = self.active.clone();
        let all: Vec<SegmentMeta> = self.segments().cloned().collect();
        for seg in all {
            let path = self.dir.join(seg.file_name());
            let mut hit = false;
            frames::scan(&path, |_, ev| hit |= ev.as_ref().is_some_and(&matches))?;
            if !hit {
                continue;
            }
            let tmp = path.with_extension("tmp");
            let file = OpenOptions::new().create(true).write(true).truncate(true).open(&tmp)?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let (mut bytes, mut buf, mut failed, mut clicks) = (0u64, Vec::new(), Ok(()), 0u64);
            let scan = frames::scan(&path, |frame, ev| {
                if failed.is_err() {
                    return;
                }
                buf.clear();
                match ev {
                    Some(mut ev) if matches(&ev) => {
                        anonymise(&mut ev);
                        clicks += 1;
                        if let Err(e) = frames::encode(&ev, &mut buf) {
                            failed = Err(e);
                            return;
                        }
                    }
                    // Another click, or a frame that does not decode: copied as it is.
                    _ => buf.extend_from_slice(frame),
                }
                bytes += buf.len() as u64;
                failed = w.write_all(&buf);
            })?;
            failed?;
            if let Some((offset, why)) = scan.bad {
                // What follows a bad frame cannot be read, so cannot be told clean: it is not
                // carried over.
                tracing::error!(path = %path.display(), offset, why, "erase drops a click log segment's unreadable tail");
            }
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)?;
            out.clicks += clicks;
            out.segments += 1;
            if seg == active {
                self.active.bytes = bytes;
                self.file = OpenOptions::new().append(true).open(&path)?;
            } else if let Some(s) = self.sealed.iter_mut().find(|s| **s == seg) {
                s.bytes = bytes;
            }
        }
        Ok(out)
    }
}
