use super::*;
use crate::model::VisitorId;
use tokio::sync::watch;

fn event(n: u64) -> ClickEvent {
    let ts_ms = 1_763_800_000_000 + n;
    ClickEvent {
        visitor_id: VisitorId([n as u8; 16]),
        country: Some(*b"DE"),
        asn: 3320,
        ua_hash: n,
        ip_hash: Some(n),
        ..crate::testing::click(crate::testing::click_signer().mint(ts_ms, 3, 4), ts_ms)
    }
}

fn events(range: std::ops::Range<u64>) -> Vec<ClickEvent> {
    range.map(event).collect()
}

fn ts(evs: &[ClickEvent]) -> Vec<u64> {
    evs.iter().map(|e| e.ts_ms - 1_763_800_000_000).collect()
}

fn open(dir: &Path) -> Arc<Spool> {
    Arc::new(Spool::open(dir, 1 << 20).unwrap())
}

fn small(dir: &Path, bytes_max: u64, segment_bytes_max: u64) -> Arc<Spool> {
    Arc::new(Spool::open_with(dir, SpoolOptions { bytes_max, segment_bytes_max, sync_every: Duration::MAX }).unwrap())
}

/// Reads everything left, in batches of `len_max`.
fn read_all(reader: &mut SpoolReader, len_max: usize) -> Vec<ClickEvent> {
    let mut out = Vec::new();
    loop {
        let b = reader.next_batch(len_max).unwrap();
        if b.events.is_empty() {
            return out;
        }
        assert!(b.events.len() <= len_max);
        out.extend(b.events);
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "seg")).collect();
    v.sort();
    v
}

fn frame_len(ev: &ClickEvent) -> u64 {
    let mut buf = Vec::new();
    ev.encode_into(&mut buf).unwrap();
    (FRAME_HEADER_BYTES + buf.len()) as u64
}

#[test]
fn reads_back_in_order_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.append(&events(0..3)).unwrap();
    spool.append(&events(3..4)).unwrap();
    spool.append(&events(4..10)).unwrap();
    let mut reader = spool.reader().unwrap();
    let first = reader.next_batch(4).unwrap();
    assert_eq!(ts(&first.events), [0, 1, 2, 3]);
    assert_eq!(first.end, reader.position());
    assert_eq!(ts(&read_all(&mut reader, 4)), [4, 5, 6, 7, 8, 9]);
    assert!(reader.next_batch(4).unwrap().events.is_empty());
    // Appends after catching up are read next.
    spool.append(&events(10..12)).unwrap();
    assert_eq!(ts(&read_all(&mut reader, 100)), [10, 11]);
}

#[test]
fn an_event_reads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    let ev = event(7);
    spool.append(std::slice::from_ref(&ev)).unwrap();
    assert_eq!(spool.reader().unwrap().next_batch(1).unwrap().events, [ev]);
}

#[test]
fn pending_bytes_count_what_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    let gauge = IntGauge::new("spool_bytes_test", "test").unwrap();
    let spool = Arc::new(Arc::into_inner(spool).unwrap().with_pending_gauge(gauge.clone()));
    assert_eq!(spool.pending_bytes(), 0);
    let evs = events(0..5);
    spool.append(&evs).unwrap();
    let total: u64 = evs.iter().map(frame_len).sum();
    assert_eq!(spool.pending_bytes(), total);
    assert_eq!(gauge.get(), total as i64);
    let mut reader = spool.reader().unwrap();
    let b = reader.next_batch(2).unwrap();
    // Read but not committed still counts.
    assert_eq!(spool.pending_bytes(), total);
    reader.commit(b.end).unwrap();
    assert_eq!(spool.pending_bytes(), total - frame_len(&evs[0]) - frame_len(&evs[1]));
    let b = reader.next_batch(10).unwrap();
    reader.commit(b.end).unwrap();
    assert_eq!(spool.pending_bytes(), 0);
    assert_eq!(gauge.get(), 0);
}

#[test]
fn reopening_resumes_at_the_committed_cursor() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path());
        spool.append(&events(0..10)).unwrap();
        let mut reader = spool.reader().unwrap();
        let b = reader.next_batch(4).unwrap();
        reader.commit(b.end).unwrap();
        // Read past the cursor without committing: a crash before the commit.
        assert_eq!(ts(&reader.next_batch(3).unwrap().events), [4, 5, 6]);
    }
    let spool = open(dir.path());
    let mut reader = spool.reader().unwrap();
    // Everything after the cursor again, the uncommitted three included (at-least-once).
    assert_eq!(ts(&read_all(&mut reader, 100)), [4, 5, 6, 7, 8, 9]);
    spool.append(&events(10..11)).unwrap();
    assert_eq!(ts(&read_all(&mut reader, 100)), [10]);
}

#[test]
fn a_commit_at_or_before_the_cursor_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.append(&events(0..4)).unwrap();
    let mut reader = spool.reader().unwrap();
    let a = reader.next_batch(2).unwrap();
    let b = reader.next_batch(2).unwrap();
    reader.commit(b.end).unwrap();
    reader.commit(a.end).unwrap();
    reader.commit(Position(0)).unwrap();
    drop(reader);
    assert_eq!(spool.pending_bytes(), 0);
    assert!(spool.reader().unwrap().next_batch(10).unwrap().events.is_empty());
}

#[test]
fn one_reader_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    let reader = spool.reader().unwrap();
    assert!(matches!(spool.reader(), Err(SpoolError::ReaderTaken)));
    drop(reader);
    assert!(spool.reader().is_ok());
}

#[test]
fn a_new_reader_starts_at_the_cursor_not_where_the_last_one_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.append(&events(0..6)).unwrap();
    let mut reader = spool.reader().unwrap();
    let b = reader.next_batch(2).unwrap();
    reader.commit(b.end).unwrap();
    reader.next_batch(2).unwrap();
    drop(reader);
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [2, 3, 4, 5]);
}

#[test]
fn a_torn_tail_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path());
        spool.append(&events(0..5)).unwrap();
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let good = std::fs::metadata(&seg).unwrap().len();
    // A crash mid-write: a header promising 300 bytes, and only 10 of them.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&300u32.to_le_bytes()).unwrap();
    f.write_all(&[7u8; 14]).unwrap();
    drop(f);
    let spool = open(dir.path());
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good);
    // What is appended after the restart is not hidden behind the torn frame.
    spool.append(&events(5..7)).unwrap();
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [0, 1, 2, 3, 4, 5, 6]);
}

#[test]
fn a_zero_filled_tail_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path());
        spool.append(&events(0..2)).unwrap();
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let good = std::fs::metadata(&seg).unwrap().len();
    // Some file systems leave zeros where unsynced blocks were after a power loss.
    OpenOptions::new().write(true).open(&seg).unwrap().set_len(good + 4096).unwrap();
    let spool = open(dir.path());
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good);
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [0, 1]);
}

#[test]
fn a_damaged_frame_is_skipped_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(0..3);
    {
        let spool = open(dir.path());
        for ev in &evs {
            spool.append(std::slice::from_ref(ev)).unwrap();
        }
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Flip a payload byte of the second frame: its checksum fails.
    let at = frame_len(&evs[0]) as usize + FRAME_HEADER_BYTES + 5;
    bytes[at] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let spool = open(dir.path());
    // The last frame is intact, so opening cuts nothing.
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), bytes.len() as u64);
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [0, 2]);
}

#[test]
fn a_frame_that_is_no_click_event_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path());
        spool.append(&events(0..1)).unwrap();
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    // A well-formed frame whose payload is not an event.
    let payload = b"not a click event";
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&(payload.len() as u32).to_le_bytes()).unwrap();
    f.write_all(&crc32fast::hash(payload).to_le_bytes()).unwrap();
    f.write_all(payload).unwrap();
    drop(f);
    let spool = open(dir.path());
    spool.append(&events(1..2)).unwrap();
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [0, 1]);
}

#[test]
fn a_full_spool_refuses_appends_until_a_commit_frees_room() {
    let dir = tempfile::tempdir().unwrap();
    let one = frame_len(&event(0));
    let spool = small(dir.path(), 10 * one, 4 * one);
    let mut n = 0;
    let err = loop {
        match spool.append(&events(n..n + 1)) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
        assert!(n <= 10, "the spool never refused");
    };
    assert!(matches!(err, SpoolError::Full { .. }), "{err}");
    assert!(spool.pending_bytes() <= 10 * one);
    // The refused event is not in the spool.
    let mut reader = spool.reader().unwrap();
    let b = reader.next_batch(100).unwrap();
    assert_eq!(b.events.len() as u64, n);
    assert!(spool.append(&events(100..101)).is_err());
    reader.commit(b.end).unwrap();
    spool.append(&events(100..101)).unwrap();
    assert_eq!(ts(&reader.next_batch(100).unwrap().events), [100]);
}

#[test]
fn a_full_spool_error_reads_as_storage_full() {
    let e: io::Error = SpoolError::Full { pending_bytes: 1, batch_bytes: 2, bytes_max: 2 }.into();
    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
}

#[test]
fn segments_roll_and_are_deleted_once_read_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let one = frame_len(&event(0));
    let spool = small(dir.path(), 1 << 20, 3 * one);
    for n in 0..10 {
        spool.append(&events(n..n + 1)).unwrap();
    }
    assert_eq!(segment_files(dir.path()).len(), 4);
    let mut reader = spool.reader().unwrap();
    let b = reader.next_batch(4).unwrap();
    reader.commit(b.end).unwrap();
    // The first segment (events 0..3) is read to its end; the second is not.
    assert_eq!(segment_files(dir.path()).len(), 3);
    let rest = read_all(&mut reader, 100);
    assert_eq!(ts(&rest), [4, 5, 6, 7, 8, 9]);
    reader.commit(reader.position()).unwrap();
    // Only the segment being appended to is left.
    assert_eq!(segment_files(dir.path()).len(), 1);
    drop(reader);
    drop(spool);
    let spool = small(dir.path(), 1 << 20, 3 * one);
    assert!(spool.reader().unwrap().next_batch(100).unwrap().events.is_empty());
    spool.append(&events(10..11)).unwrap();
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [10]);
}

#[test]
fn reading_crosses_segments_in_order_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let one = frame_len(&event(0));
    {
        let spool = small(dir.path(), 1 << 20, 2 * one);
        for n in 0..7 {
            spool.append(&events(n..n + 1)).unwrap();
        }
    }
    let spool = small(dir.path(), 1 << 20, 2 * one);
    spool.append(&events(7..9)).unwrap();
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 3)), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn a_cursor_past_a_lost_tail_resumes_appending_at_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path());
        spool.append(&events(0..4)).unwrap();
        let mut reader = spool.reader().unwrap();
        let b = reader.next_batch(4).unwrap();
        reader.commit(b.end).unwrap();
    }
    // A power loss took the unsynced segment data but not the (fsynced) cursor.
    let seg = segment_files(dir.path()).pop().unwrap();
    OpenOptions::new().write(true).open(&seg).unwrap().set_len(0).unwrap();
    let spool = open(dir.path());
    spool.append(&events(4..6)).unwrap();
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [4, 5]);
    drop(spool);
    let spool = open(dir.path());
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [4, 5]);
}

#[test]
fn a_corrupt_cursor_rereads_from_the_oldest_segment() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path());
        spool.append(&events(0..3)).unwrap();
        let mut reader = spool.reader().unwrap();
        let b = reader.next_batch(2).unwrap();
        reader.commit(b.end).unwrap();
    }
    std::fs::write(dir.path().join(CURSOR_FILE), b"garbage").unwrap();
    let spool = open(dir.path());
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [0, 1, 2]);
}

#[test]
fn a_stray_file_in_the_directory_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.seg"), b"hello").unwrap();
    std::fs::write(dir.path().join("README"), b"hello").unwrap();
    let spool = open(dir.path());
    spool.append(&events(0..1)).unwrap();
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [0]);
}

#[test]
fn sync_and_empty_appends_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.append(&[]).unwrap();
    spool.append(&events(0..1)).unwrap();
    spool.sync().unwrap();
    assert_eq!(spool.pending_bytes(), frame_len(&event(0)));
}

#[test]
fn appends_from_many_threads_all_arrive_each_batch_whole() {
    let dir = tempfile::tempdir().unwrap();
    let one = frame_len(&event(0));
    let spool = small(dir.path(), 1 << 24, 50 * one);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let spool = &spool;
            s.spawn(move || {
                for i in 0..50 {
                    let base = t * 1000 + i * 2;
                    spool.append(&events(base..base + 2)).unwrap();
                }
            });
        }
    });
    let got = ts(&read_all(&mut spool.reader().unwrap(), 64));
    assert_eq!(got.len(), 400);
    // Each two-event batch is contiguous, and each thread's batches keep their order.
    for pair in got.chunks(2) {
        assert_eq!(pair[1], pair[0] + 1);
    }
    for t in 0..4 {
        let mine: Vec<u64> = got.iter().copied().filter(|n| n / 1000 == t).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
}

/// A sink that fails its first `fail_first` deliveries and records the rest.
struct Recorder {
    fail_first: usize,
    calls: usize,
    got: Arc<Mutex<Vec<ClickEvent>>>,
}

impl SpoolSink for Recorder {
    type Error = &'static str;

    async fn deliver(&mut self, events: &[ClickEvent]) -> Result<(), &'static str> {
        self.calls += 1;
        if self.calls <= self.fail_first {
            return Err("broker down");
        }
        lock(&self.got).extend_from_slice(events);
        Ok(())
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn drain_delivers_in_order_retries_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.append(&events(0..5)).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn({
        let spool = spool.clone();
        let got = got.clone();
        async move {
            let mut sink = Recorder { fail_first: 3, calls: 0, got };
            drain(spool, 2, Duration::from_millis(1), &mut sink, stop).await.unwrap();
            sink.calls
        }
    });
    wait_for("the first events", || lock(&got).len() == 5).await;
    // Appends after the drain caught up wake it.
    spool.append(&events(5..8)).unwrap();
    wait_for("the later events", || lock(&got).len() == 8).await;
    wait_for("the commit", || spool.pending_bytes() == 0).await;
    stop_tx.send(true).unwrap();
    let calls = task.await.unwrap();
    assert_eq!(ts(&lock(&got)), [0, 1, 2, 3, 4, 5, 6, 7]);
    // 3 failures, then batches of at most 2: [0,1] [2,3] [4] [5,6] [7].
    assert_eq!(calls, 3 + 5);
    // The drain gave its reader back.
    assert!(spool.reader().is_ok());
}

#[tokio::test]
async fn drain_stops_while_retrying_and_keeps_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.append(&events(0..3)).unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let got = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn({
        let spool = spool.clone();
        let got = got.clone();
        async move {
            let mut sink = Recorder { fail_first: usize::MAX, calls: 0, got };
            drain(spool, 10, Duration::from_millis(1), &mut sink, stop).await.unwrap();
            sink.calls
        }
    });
    while !task.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        stop_tx.send_replace(true);
    }
    assert!(task.await.unwrap() >= 1);
    assert!(lock(&got).is_empty());
    // Nothing was committed: the next reader gets all three.
    assert_eq!(ts(&read_all(&mut spool.reader().unwrap(), 100)), [0, 1, 2]);
}

#[tokio::test]
async fn drain_refuses_a_second_reader() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    let _reader = spool.reader().unwrap();
    let (_stop_tx, stop) = watch::channel(false);
    let mut sink = Recorder { fail_first: 0, calls: 0, got: Arc::default() };
    assert!(matches!(drain(spool.clone(), 10, Duration::from_millis(1), &mut sink, stop).await, Err(SpoolError::ReaderTaken)));
}

#[test]
fn a_spool_keeps_its_id_and_a_new_spool_gets_another() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = open(a.path()).id();
    assert_eq!(open(a.path()).id(), id, "reopening keeps the id");
    assert_ne!(open(b.path()).id(), id);
    std::fs::write(a.path().join(ID_FILE), "not hex\n").unwrap();
    assert!(matches!(Spool::open(a.path(), 1 << 20), Err(SpoolError::BadId(_))), "a damaged id is refused, never replaced");
}

#[test]
fn batches_name_the_span_they_cover_and_stop_at_a_byte_budget() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.append(&events(0..10)).unwrap();
    let mut one = Vec::new();
    event(0).encode_into(&mut one).unwrap();
    let mut reader = spool.reader().unwrap();
    assert!(!reader.caught_up());
    // The budget is reached by the third event, which is still taken.
    let a = reader.next_batch_within(100, 2 * one.len() + 1).unwrap();
    assert_eq!((ts(&a.events), a.start), (vec![0, 1, 2], Position(0)));
    let b = reader.next_batch_within(4, usize::MAX).unwrap();
    assert_eq!((ts(&b.events), b.start), (vec![3, 4, 5, 6], a.end), "the next batch starts where the last ended");
    let c = reader.next_batch(100).unwrap();
    assert_eq!(ts(&c.events), [7, 8, 9]);
    assert!(reader.caught_up());
    assert_eq!(c.end.0, spool.pending_bytes());
    let empty = reader.next_batch(100).unwrap();
    assert_eq!((empty.start, empty.end), (c.end, c.end));

    // After a restart the reader starts at the committed cursor, so a batch read from there
    // covers the same span as before.
    reader.commit(a.end).unwrap();
    drop((reader, spool));
    let again = open(dir.path()).reader().unwrap().next_batch(4).unwrap();
    assert_eq!((again.start, again.end, ts(&again.events)), (b.start, b.end, ts(&b.events)));
}
