use super::*;

/// Unix ms the test clock starts at (2025-11-22).
pub(crate) const T0_MS: u64 = 1_763_800_000_000;

/// A deterministic click id for click `n` at `ts_ms`, laid out as the signer lays them out
/// (the MAC bytes are a stand-in: nothing here verifies signatures).
pub(crate) fn click_id(n: u64, ts_ms: u64) -> ClickId {
    let mut b = [0u8; CLICK_ID_BYTES];
    b[..6].copy_from_slice(&ts_ms.to_be_bytes()[2..]);
    b[6] = 1;
    b[7..15].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes()).to_le_bytes());
    b[15..19].copy_from_slice(&((n % 5) as u32).to_be_bytes());
    b[19..23].copy_from_slice(&((n % 3) as u32).to_be_bytes());
    b[23..31].copy_from_slice(&n.to_le_bytes());
    ClickId(b)
}

/// Click `n` of visitor `visitor` at `ts_ms`: programs, partners, links and channels vary
/// with `n`, and every 20th click is flagged as a duplicate (with a second reason every 40th).
pub(crate) fn event_at(n: u64, ts_ms: u64, visitor: u64) -> ClickEvent {
    const PROGRAMS: [&str; 2] = ["shop", "cafe"];
    const PARTNERS: [&str; 3] = ["alice", "bob", "carol"];
    let mut reasons = Reasons::default();
    let verdict = if n % 20 == 7 {
        reasons.insert(Reason::Duplicate);
        if n % 40 == 7 {
            reasons.insert(Reason::VelocityIp);
        }
        Verdict::Flagged
    } else {
        Verdict::Valid
    };
    let mut visitor_id = [0u8; 16];
    visitor_id[..8].copy_from_slice(&visitor.to_le_bytes());
    ClickEvent {
        program: PROGRAMS[(n % 2) as usize].into(),
        partner: PARTNERS[(n % 3) as usize].into(),
        link: format!("l{}", n % 5).into(),
        channel: CHANNELS[(n % 6) as usize],
        sub_ids: (n % 4 == 0).then(|| Box::new([Some("s1".into()), None, None, None, None])),
        verdict,
        reasons,
        visitor_id: VisitorId(visitor_id),
        new_visitor: n % 7 == 0,
        country: Some(*b"DE"),
        asn: 3320,
        ua_hash: n.wrapping_mul(0x9E37_79B9),
        ip: Some(std::net::IpAddr::from([198, 51, 100, 0])),
        ..crate::testing::click(click_id(n, ts_ms), ts_ms)
    }
}

/// Click `n`, one second after click `n - 1`, of visitor `n % 7`.
pub(crate) fn event(n: u64) -> ClickEvent {
    event_at(n, T0_MS + n * 1000, n % 7)
}

pub(crate) fn indexed(ev: &ClickEvent) -> IndexedClick {
    IndexedClick {
        click_id: ev.click_id,
        ts_ms: ev.ts_ms,
        program: ev.program.clone(),
        partner: ev.partner.clone(),
        link: ev.link.clone(),
        channel: ev.channel,
        verdict: ev.verdict,
        reasons: ev.reasons,
        visitor_id: ev.visitor_id,
    }
}

fn ids(touches: &[IndexedClick]) -> Vec<ClickId> {
    touches.iter().map(|c| c.click_id).collect()
}

#[test]
fn finds_a_click_by_id_with_every_field() {
    let mut index = ClickIndex::new(1000, 32);
    let events: Vec<ClickEvent> = (0..100).map(event).collect();
    for ev in &events {
        assert!(index.insert(ev));
    }
    assert_eq!(index.len(), 100);
    for ev in &events {
        assert_eq!(index.click(&ev.click_id), Some(indexed(ev)), "click {:?}", ev.click_id);
        assert!(index.contains(&ev.click_id));
    }
    assert_eq!(index.click(&click_id(1000, T0_MS)), None);
    // Same random bytes, different timestamp: a different id, so not found.
    assert!(!index.contains(&click_id(3, T0_MS)));
    assert_eq!(index.visitors(), 7);
    assert_eq!(index.sources(), 30, "2 programs x 3 partners x 5 links, combined by n mod 30");
}

#[test]
fn a_held_id_is_not_inserted_again() {
    let mut index = ClickIndex::new(1000, 32);
    assert!(index.insert(&event(1)));
    assert!(!index.insert(&event(1)));
    let mut changed = event(1);
    changed.partner = "mallory".into();
    assert!(!index.insert(&changed), "the id decides, not the content");
    assert_eq!(index.len(), 1);
    assert_eq!(index.click(&event(1).click_id).unwrap().partner.as_ref(), event(1).partner.as_ref());
    assert_eq!(index.visitor_touches(&event(1).visitor_id, 0, u64::MAX).len(), 1);
}

#[test]
fn visitor_touches_are_filtered_by_range_and_oldest_first() {
    let mut index = ClickIndex::new(1000, 32);
    // Inserted out of time order, as batches from two edges may arrive.
    let ts = [5_000, 1_000, 3_000, 2_000, 4_000];
    let events: Vec<ClickEvent> = ts.iter().enumerate().map(|(i, t)| event_at(i as u64, T0_MS + t, 9)).collect();
    events.iter().for_each(|ev| assert!(index.insert(ev)));
    index.insert(&event_at(99, T0_MS + 3_000, 10));
    let v = events[0].visitor_id;
    let check = |since: u64, until: u64, want: &[usize]| {
        let got = index.visitor_touches(&v, T0_MS + since, T0_MS + until);
        assert_eq!(ids(&got), want.iter().map(|&i| events[i].click_id).collect::<Vec<_>>(), "range {since}..={until}");
    };
    check(0, 10_000, &[1, 3, 2, 4, 0]);
    check(2_000, 4_000, &[3, 2, 4]);
    check(3_000, 3_000, &[2]);
    check(5_001, 9_000, &[]);
    check(4_000, 3_000, &[]);
    assert_eq!(index.visitor_touches(&VisitorId([0xee; 16]), 0, u64::MAX), vec![]);
    // Flagged touches are returned too: the caller decides what counts.
    let all = index.visitor_touches(&events[0].visitor_id, 0, u64::MAX);
    assert_eq!(all.iter().map(|c| c.verdict).collect::<Vec<_>>(), vec![Verdict::Valid; 5]);
    let flagged = event_at(7, T0_MS + 6_000, 9);
    index.insert(&flagged);
    assert_eq!(index.visitor_touches(&v, T0_MS + 6_000, T0_MS + 6_000), vec![indexed(&flagged)]);
}

#[test]
fn keeps_only_the_newest_touches_of_a_visitor() {
    let mut index = ClickIndex::new(1000, 3);
    let events: Vec<ClickEvent> = (0..5).map(|n| event_at(n, T0_MS + n, 1)).collect();
    events.iter().for_each(|ev| assert!(index.insert(ev)));
    let got = index.visitor_touches(&events[0].visitor_id, 0, u64::MAX);
    assert_eq!(ids(&got), ids(&events[2..].iter().map(indexed).collect::<Vec<_>>()));
    // Dropped from the visitor's touches, still found by id.
    assert_eq!(index.click(&events[0].click_id), Some(indexed(&events[0])));
}

#[test]
fn evicts_the_oldest_click_and_unlinks_it_from_its_visitor() {
    let clicks_max = 10;
    let mut index = ClickIndex::new(clicks_max, 32);
    let events: Vec<ClickEvent> = (0..25).map(event).collect();
    events.iter().for_each(|ev| assert!(index.insert(ev)));
    assert_eq!(index.len(), clicks_max);
    assert_eq!(index.evictions(), 15);
    let (gone, held) = events.split_at(15);
    assert!(gone.iter().all(|ev| !index.contains(&ev.click_id)));
    assert!(held.iter().all(|ev| index.click(&ev.click_id) == Some(indexed(ev))));
    for v in 0..7 {
        let want: Vec<IndexedClick> = held.iter().filter(|ev| ev.visitor_id == event_at(0, 0, v).visitor_id).map(indexed).collect();
        assert_eq!(index.visitor_touches(&event_at(0, 0, v).visitor_id, 0, u64::MAX), want, "visitor {v}");
    }
    assert_eq!(index.visitors(), 7);
    // An evicted id is new again.
    assert!(index.insert(&events[0]));
    assert!(!index.contains(&events[15].click_id));
}

#[test]
fn a_visitor_whose_clicks_are_all_evicted_is_forgotten() {
    let mut index = ClickIndex::new(4, 32);
    index.insert(&event_at(0, T0_MS, 1));
    for n in 1..5 {
        index.insert(&event_at(n, T0_MS + n, 2));
    }
    assert_eq!(index.visitors(), 1);
    assert!(index.visitor_touches(&event_at(0, 0, 1).visitor_id, 0, u64::MAX).is_empty());
    assert_eq!(index.visitor_touches(&event_at(0, 0, 2).visitor_id, 0, u64::MAX).len(), 4);
    // A visitor whose slot in the ring is reused by its own newer click keeps a sound chain.
    let mut index = ClickIndex::new(3, 32);
    let events: Vec<ClickEvent> = (0..10).map(|n| event_at(n, T0_MS + n, 5)).collect();
    events.iter().for_each(|ev| assert!(index.insert(ev)));
    let got = index.visitor_touches(&events[0].visitor_id, 0, u64::MAX);
    assert_eq!(ids(&got), events[7..].iter().map(|e| e.click_id).collect::<Vec<_>>());
}

#[test]
fn memory_is_bounded_by_config_not_by_input() {
    let clicks_max = 2_000;
    let mut index = ClickIndex::new(clicks_max, 8);
    // Every click a new visitor and a new link: the worst case for the side tables.
    let fresh = |n: u64| {
        let mut ev = event_at(n, T0_MS + n, n);
        (ev.link, ev.partner) = (format!("link-{n:08}").into(), "alice".into());
        ev
    };
    // Deletes leave tombstones in the hash maps; hashbrown may grow a map once, to where its
    // items are at most half its capacity, and from then on rehashes in place.
    for n in 0..100_000 {
        index.insert(&fresh(n));
    }
    let settled = index.heap_bytes();
    for n in 100_000..300_000 {
        index.insert(&fresh(n));
    }
    assert_eq!(index.len(), clicks_max);
    assert_eq!(index.visitors(), clicks_max);
    assert_eq!(index.sources(), clicks_max);
    assert_eq!(index.heap_bytes(), settled, "no table grows any more");
    assert!(settled < clicks_max * 1024, "{settled} bytes for {clicks_max} clicks");
}

#[test]
fn channels_verdicts_and_reasons_survive_packing() {
    let mut index = ClickIndex::new(100, 32);
    for (i, v) in Verdict::ALL.into_iter().enumerate() {
        for (j, c) in CHANNELS.into_iter().enumerate() {
            let mut ev = event((i * 10 + j) as u64);
            ev.verdict = v;
            ev.channel = c;
            ev.reasons = Reasons::default();
            Reason::ALL.iter().skip(i + j).step_by(3).for_each(|r| ev.reasons.insert(*r));
            assert!(index.insert(&ev));
            assert_eq!(index.click(&ev.click_id), Some(indexed(&ev)));
        }
    }
}

#[test]
fn batched_inserts_decide_exactly_as_single_ones() {
    // Repeats inside and across batches, and far more clicks than fit, so batches evict.
    let mut rng = fastrand::Rng::with_seed(11);
    let events: Vec<ClickEvent> = (0..5000).map(|_| rng.u64(0..3000)).map(|n| event_at(n, T0_MS + n, n % 13)).collect();
    let mut one = ClickIndex::new(700, 4);
    let mut batched = ClickIndex::new(700, 4);
    let singles: Vec<bool> = events.iter().map(|ev| one.insert(ev)).collect();
    let mut got = Vec::new();
    for chunk in events.chunks(333) {
        let refs: Vec<&ClickEvent> = chunk.iter().collect();
        batched.insert_batch(&refs, |ev, inserted| got.push((ev.click_id, inserted)));
    }
    assert_eq!(got, events.iter().map(|e| e.click_id).zip(singles).collect::<Vec<_>>());
    assert!(got.iter().any(|(_, inserted)| !inserted) && batched.evictions() > 0);
    for ev in &events {
        assert_eq!(one.click(&ev.click_id), batched.click(&ev.click_id));
    }
    for v in 0..13 {
        let v = event_at(0, 0, v).visitor_id;
        assert_eq!(one.visitor_touches(&v, 0, u64::MAX), batched.visitor_touches(&v, 0, u64::MAX));
    }
    assert_eq!((one.len(), one.visitors(), one.sources()), (batched.len(), batched.visitors(), batched.sources()));
}
