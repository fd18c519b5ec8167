//! Bytes as a stored click event, three ways the core meets them: `ClickEvent::decode` (queue
//! and JetStream payloads), a click-log segment read by `SegmentLog::read`, and a spool segment
//! drained by `SpoolReader::next_batch`. Torn, corrupt or hostile bytes are errors or skipped
//! frames, never a panic. A decoded event must encode and decode to itself.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use clickgate::click_log::SegmentLog;
use clickgate::events::spool::Spool;
use clickgate::events::ClickEvent;
use libfuzzer_sys::fuzz_target;

/// The scratch directory's log dir and spool dir, each emptied before every input.
fn scratch() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let root = clickgate_fuzz::scratch_dir("click-event");
        (root.join("log"), root.join("spool"))
    })
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create the scratch dir");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = ClickEvent::decode(data) {
        let mut buf = Vec::new();
        ev.encode_into(&mut buf).expect("a decoded event encodes");
        let again = ClickEvent::decode(&buf).expect("an encoded event decodes");
        let mut buf2 = Vec::new();
        again.encode_into(&mut buf2).expect("a decoded event encodes");
        assert_eq!(buf, buf2, "decode and encode are inverse on the project's own encoding");
    }

    let (log, spool) = scratch();
    fresh(log);
    std::fs::write(log.join(format!("{:020}.log", 0)), data).expect("write the segment");
    let _ = SegmentLog::read(log, |_| {});

    fresh(spool);
    std::fs::write(spool.join(format!("{:020}.seg", 0)), data).expect("write the segment");
    if let Ok(spool) = Spool::open(spool, 1 << 20) {
        let spool = Arc::new(spool);
        if let Ok(mut reader) = spool.reader() {
            // Each batch moves the position forward or is empty; the bound only keeps a bug
            // from hanging the fuzzer.
            for _ in 0..1024 {
                match reader.next_batch(64) {
                    Ok(batch) if !batch.events.is_empty() => {}
                    _ => break,
                }
            }
        }
    }
});
