use std::fs;

use super::*;
use crate::index::tests::{self, T0_MS};
use crate::model::Channel;
use crate::model::ClickId;
use crate::model::{Reasons, Verdict};

/// Click `n` at `ts_ms`, with every variable-length field fixed so that all frames are the same
/// size and segment limits can be counted in frames.
fn event_at(n: u64, ts_ms: u64, visitor: u64) -> ClickEvent {
    let mut ev = tests::event_at(n, ts_ms, visitor);
    (ev.partner, ev.channel, ev.sub_ids) = ("alice".into(), Channel::Web, None);
    (ev.verdict, ev.reasons, ev.ua_hash) = (Verdict::Valid, Reasons::default(), 1 << 40 | n);
    ev
}

fn event(n: u64) -> ClickEvent {
    event_at(n, T0_MS + n * 1000, n % 7)
}

fn open(dir: &Path, segment_bytes_max: u64) -> (SegmentLog, Vec<ClickEvent>) {
    let mut events = Vec::new();
    let log = SegmentLog::open(dir, segment_bytes_max, |ev| events.push(ev)).unwrap();
    (log, events)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n != super::LOCK_FILE).collect();
    names.sort();
    names
}

fn ids(events: &[ClickEvent]) -> Vec<ClickId> {
    events.iter().map(|e| e.click_id).collect()
}

/// Bytes one event takes as a frame.
fn frame_len(ev: &ClickEvent) -> u64 {
    let mut buf = Vec::new();
    frames::encode(ev, &mut buf).unwrap();
    let mut other = Vec::new();
    frames::encode(&event(12345), &mut other).unwrap();
    assert_eq!(buf.len(), other.len(), "test frames are all one size");
    buf.len() as u64
}

#[test]
fn appends_reopens_and_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<ClickEvent> = (0..300).map(event).collect();
    let (mut log, replayed) = open(dir.path(), 1 << 20);
    assert!(replayed.is_empty());
    for batch in events.chunks(64) {
        log.append_batch(batch).unwrap();
    }
    log.append_batch(&[]).unwrap();
    assert_eq!(log.segments().map(|s| s.events).sum::<u64>(), 300);
    let bytes = log.bytes();
    drop(log);
    let (log, replayed) = open(dir.path(), 1 << 20);
    assert_eq!(replayed, events, "every field of every event, in order");
    assert_eq!(log.bytes(), bytes);
    assert_eq!(files(dir.path()), vec!["00000000000000000000.log"]);
    let seg = log.segments().next().unwrap();
    assert_eq!((seg.events, seg.min_ts_ms, seg.max_ts_ms), (300, T0_MS, T0_MS + 299_000));
    let mut again = Vec::new();
    log.replay(|ev| again.push(ev)).unwrap();
    assert_eq!(again, events);
}

#[test]
fn a_torn_tail_is_cut_and_later_appends_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), 1 << 20);
    log.append_batch(&[event(1), event(2)]).unwrap();
    let good = log.bytes();
    drop(log);
    // A crash mid-write: the next batch's first frame whole, its second cut short.
    let mut torn = Vec::new();
    frames::encode(&event(3), &mut torn).unwrap();
    frames::encode(&event(4), &mut torn).unwrap();
    torn.truncate(torn.len() - 10);
    let path = dir.path().join("00000000000000000000.log");
    fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&torn).unwrap();

    let (mut log, replayed) = open(dir.path(), 1 << 20);
    // The whole frame before the tear is intact, so it is kept (never acknowledged, but durable).
    assert_eq!(ids(&replayed), ids(&[event(1), event(2), event(3)]));
    assert_eq!(fs::metadata(&path).unwrap().len(), good + frame_len(&event(3)), "the torn frame is cut off");
    log.append_batch(&[event(5)]).unwrap();
    drop(log);
    let (_, replayed) = open(dir.path(), 1 << 20);
    assert_eq!(ids(&replayed), ids(&[event(1), event(2), event(3), event(5)]));

    // Garbage that is not even a frame header.
    fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&[0xff; 5]).unwrap();
    let (_, replayed) = open(dir.path(), 1 << 20);
    assert_eq!(replayed.len(), 4);
}

#[test]
fn rolls_to_a_new_segment_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let one = frame_len(&event(0));
    let max = one * 10 + one / 2;
    let (mut log, _) = open(dir.path(), max);
    let events: Vec<ClickEvent> = (0..100).map(event).collect();
    for batch in events.chunks(4) {
        log.append_batch(batch).unwrap();
    }
    // 4 + 4 fit in 10.5 frames, a third batch does not: 8 events per segment.
    assert_eq!(log.segment_count(), 13);
    for name in files(dir.path()) {
        assert!(fs::metadata(dir.path().join(&name)).unwrap().len() <= max, "{name}");
    }
    // A batch larger than a segment still goes in whole, into a fresh segment.
    let big: Vec<ClickEvent> = (100..130).map(event).collect();
    log.append_batch(&big).unwrap();
    assert_eq!(log.segments().last().unwrap().events, 30);
    drop(log);
    let (log, replayed) = open(dir.path(), max);
    assert_eq!(replayed, events.into_iter().chain(big).collect::<Vec<_>>());
    // The last segment is past the limit: appends go to a new one.
    assert_eq!(log.segment_count(), 15);
    assert_eq!(files(dir.path()).last().unwrap(), "00000000000000000014.log");
}

#[test]
fn a_corrupt_sealed_segment_is_reported_and_read_up_to_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let one = frame_len(&event(0));
    let (mut log, _) = open(dir.path(), one * 4);
    let events: Vec<ClickEvent> = (0..12).map(event).collect();
    for batch in events.chunks(4) {
        log.append_batch(batch).unwrap();
    }
    drop(log);
    // Flip a byte inside the second frame of the first (sealed) segment.
    let path = dir.path().join("00000000000000000000.log");
    let mut bytes = fs::read(&path).unwrap();
    let at = (one + one / 2) as usize;
    bytes[at] ^= 0x55;
    fs::write(&path, &bytes).unwrap();

    let (mut log, replayed) = open(dir.path(), one * 4);
    assert_eq!(ids(&replayed), ids(&[&events[..1], &events[4..]].concat()));
    let first = log.segments().next().unwrap().clone();
    assert!(first.corrupt);
    assert_eq!((first.events, first.bytes), (1, one));
    assert_eq!(fs::read(&path).unwrap(), bytes, "a sealed segment is never cut");
    assert!(log.compaction_plan(u64::MAX).iter().flatten().all(|s| !s.corrupt), "never compacted");
    log.append_batch(&[event(12)]).unwrap();
}

#[test]
fn retention_deletes_only_old_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let one = frame_len(&event(0));
    let (mut log, _) = open(dir.path(), one * 2);
    let day = 86_400_000;
    // Segments: [0d, 1d], [2d, 3d], [10d, 4d] (newest 10d), then the active [5d].
    for ts in [[0, 1], [2, 3], [10, 4]] {
        let batch: Vec<ClickEvent> = ts.iter().map(|&d| event_at(d, T0_MS + d * day, 1)).collect();
        log.append_batch(&batch).unwrap();
    }
    log.append_batch(&[event_at(5, T0_MS + 5 * day, 1)]).unwrap();
    assert_eq!(log.segment_count(), 4);
    assert_eq!(log.expire(T0_MS + 3 * day).unwrap(), 1, "only the segment whose newest is before the horizon");
    assert_eq!(log.expire(T0_MS + 3 * day + 1).unwrap(), 1);
    assert_eq!(log.expire(T0_MS + 100 * day).unwrap(), 1, "the sealed [10d, 4d] segment");
    assert_eq!(log.segment_count(), 1, "the active segment stays, however old");
    assert_eq!(files(dir.path()), vec!["00000000000000000003.log"]);
    drop(log);
    let (_, replayed) = open(dir.path(), one * 2);
    assert_eq!(ids(&replayed), ids(&[event_at(5, T0_MS + 5 * day, 1)]));
}

/// A log of six sealed two-event segments plus an active one, with event 1 repeated in the
/// third segment and event 2 in the fifth.
fn small_segments(dir: &Path) -> (SegmentLog, u64) {
    let one = frame_len(&event(0));
    let (mut log, _) = open(dir, one * 2);
    for batch in [[0, 1], [2, 3], [4, 1], [5, 6], [2, 7], [8, 9], [10, 11]] {
        log.append_batch(&batch.map(event)).unwrap();
    }
    assert_eq!(log.segment_count(), 7);
    (log, one)
}

fn distinct_in_order() -> Vec<ClickId> {
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(|n| event(n).click_id).to_vec()
}

#[test]
fn compaction_merges_small_segments_and_drops_repeated_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, one) = small_segments(dir.path());
    // Segments past the group limit (2 frames per segment, 6 per merge) start a new group.
    log.segment_bytes_max = one * 6;
    let plan = log.compaction_plan(one * 3);
    assert_eq!(plan.iter().map(|g| g.len()).collect::<Vec<_>>(), vec![3, 3]);
    assert_eq!(log.compact(one * 3).unwrap(), 6);
    assert_eq!(
        files(dir.path()),
        vec!["00000000000000000000-00000000000000000002.log", "00000000000000000003-00000000000000000005.log", "00000000000000000006.log"]
    );
    let metas: Vec<SegmentMeta> = log.segments().cloned().collect();
    assert_eq!(metas[0].events, 5, "the repeated event 1 is dropped");
    assert_eq!(metas[0].bytes, one * 5);
    assert_eq!((metas[0].min_ts_ms, metas[0].max_ts_ms), (T0_MS, T0_MS + 4_000));
    assert_eq!(metas[1].events, 6, "event 2 repeats across groups and is only dropped within one");
    drop(log);
    let (log, replayed) = open(dir.path(), one * 6);
    let mut want = distinct_in_order();
    want.insert(7, event(2).click_id);
    assert_eq!(ids(&replayed), want);
    assert_eq!(log.segments().cloned().collect::<Vec<_>>(), metas, "metadata read back matches");
    // Merged segments are at the size floor now: nothing more to do.
    let mut log = log;
    assert_eq!(log.compact(one * 3).unwrap(), 0);
}

#[test]
fn compaction_survives_a_crash_at_every_step() {
    // Before the rename: a leftover temp file is removed on open; the originals are intact.
    let dir = tempfile::tempdir().unwrap();
    let (mut log, one) = small_segments(dir.path());
    log.segment_bytes_max = one * 100;
    let group = log.compaction_plan(one * 3).remove(0);
    assert_eq!(group.len(), 6);
    let merged = merge_segments(dir.path(), &group).unwrap();
    let final_name = merged.file_name();
    fs::rename(dir.path().join(&final_name), dir.path().join(&final_name).with_extension("tmp")).unwrap();
    drop(log);
    let (log, replayed) = open(dir.path(), one * 100);
    assert!(!files(dir.path()).iter().any(|f| f.ends_with(".tmp")));
    assert_eq!(replayed.len(), 14, "every original frame, repeats included");
    assert_eq!(log.segment_count(), 7);
    drop(log);

    // After the rename, before the originals are deleted: they are recognised and removed.
    let (log, _) = open(dir.path(), one * 100);
    let group = log.compaction_plan(one * 3).remove(0);
    let merged = merge_segments(dir.path(), &group).unwrap();
    assert_eq!(files(dir.path()).len(), 8);
    drop(log);
    let (log, replayed) = open(dir.path(), one * 100);
    assert_eq!(ids(&replayed), distinct_in_order(), "no repeat and nothing lost");
    assert_eq!(files(dir.path()), vec![merged.file_name(), "00000000000000000006.log".to_string()]);
    assert_eq!(log.segments().next(), Some(&merged));
}
