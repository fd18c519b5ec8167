use super::*;
use crate::model::VisitorId;

fn events(range: std::ops::Range<u64>) -> Vec<ClickEvent> {
    let signer = crate::testing::click_signer();
    range
        .map(|n| {
            let ts_ms = 1_763_800_000_000 + n;
            ClickEvent {
                visitor_id: VisitorId([n as u8; 16]),
                country: Some(*b"FR"),
                asn: 3215,
                ua_hash: n,
                ua: Some("Mozilla/5.0".into()),
                ip_hash: Some(n),
                ..crate::testing::click(signer.mint(ts_ms, 3, 4), ts_ms)
            }
        })
        .collect()
}

fn encoded(evs: &[ClickEvent]) -> Vec<u8> {
    let mut buf = vec![9, 9, 9];
    encode(evs, &mut buf).unwrap();
    buf
}

fn check(payload: &[u8], want: Result<(Vec<ClickEvent>, usize), BatchError>) {
    let mut out = Vec::new();
    let got = decode(payload, &mut out).map(|d| {
        assert_eq!(d.events, out.len());
        (out, d.bad_events)
    });
    assert_eq!(got, want);
}

#[test]
fn a_batch_decodes_to_its_events_in_order() {
    let evs = events(0..5);
    let payload = encoded(&evs);
    assert_eq!(&payload[..2], [BATCH_MAGIC, BATCH_VERSION], "encode clears the buffer first");
    check(&payload, Ok((evs, 0)));
    assert_eq!(event_count(&payload), Ok(5));
}

#[test]
fn a_single_event_message_still_decodes() {
    let evs = events(7..8);
    let mut payload = Vec::new();
    evs[0].encode_into(&mut payload).unwrap();
    assert_ne!(payload[0], BATCH_MAGIC, "an event never starts with the batch byte");
    assert_eq!(event_count(&payload), Ok(1));
    check(&payload, Ok((evs, 0)));
}

#[test]
fn a_frame_that_is_no_event_is_skipped_and_counted() {
    let evs = events(0..2);
    let mut payload = encoded(&evs[..1]);
    payload.extend_from_slice(&3u32.to_le_bytes());
    payload.extend_from_slice(b"bad");
    let mut rest = Vec::new();
    encode(&evs[1..], &mut rest).unwrap();
    payload.extend_from_slice(&rest[2..]);
    check(&payload, Ok((evs, 1)));
}

#[test]
fn broken_payloads_are_refused_whole() {
    let payload = encoded(&events(0..3));
    check(&payload[..payload.len() - 1], Err(BatchError::Truncated(payload.len() - last_frame_len(&payload))));
    check(&payload[..4], Err(BatchError::Truncated(2)));
    check(&[BATCH_MAGIC], Err(BatchError::Truncated(1)));
    check(&[BATCH_MAGIC, BATCH_VERSION], Err(BatchError::Empty));
    check(&[BATCH_MAGIC, 2, 0, 0, 0, 0], Err(BatchError::UnknownVersion(2)));
    assert!(matches!(decode(b"not msgpack at all", &mut Vec::new()), Err(BatchError::NotAnEvent(_))));
}

/// The bytes of the last frame, its length included.
fn last_frame_len(payload: &[u8]) -> usize {
    let mut at = 2;
    let mut last = at;
    while at < payload.len() {
        last = at;
        at += 4 + u32::from_le_bytes(payload[at..at + 4].try_into().unwrap()) as usize;
    }
    payload.len() - last
}

#[test]
fn message_ids_name_the_spool_the_span_and_the_content() {
    let a = encoded(&events(0..3));
    let b = encoded(&events(3..6));
    let id = message_id(0xabc, 0x10, 0x2f0, &a);
    assert!(id.starts_with("0000000000000abc.10.2f0."), "{id}");
    assert_eq!(id.len(), 16 + 1 + 2 + 1 + 3 + 1 + 16);
    assert_eq!(id, message_id(0xabc, 0x10, 0x2f0, &a), "a republish of the same span repeats the id");
    assert_ne!(id, message_id(0xabd, 0x10, 0x2f0, &a), "another spool");
    assert_ne!(id, message_id(0xabc, 0x10, 0x2f1, &a), "another span from the same start");
    assert_ne!(id, message_id(0xabc, 0x10, 0x2f0, &b), "other events at the same positions");
}
