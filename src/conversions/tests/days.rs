//! Partner and link days, which the writer keeps up to date, against what the stored
//! conversions say, on every backend.

use super::backend::Backend;
use super::*;

/// What the partner report gives for every partner, day and currency.
fn partner_day_rows(reader: &dyn Reader) -> BTreeMap<(String, u32, String), [i64; 4]> {
    let mut out = BTreeMap::new();
    for partner in ["alice", "zed"] {
        for d in reader.partner_days(partner, 0, u32::MAX).unwrap() {
            let v = [d.conversions as i64, d.revenue_minor, d.refunded_minor, d.cancelled as i64];
            assert!(out.insert((partner.to_string(), d.day, d.currency.to_string()), v).is_none());
        }
    }
    out
}

/// `partner_days`, which the writer keeps up to date (summed per group on SQLite), is what
/// summing each credited conversion's share gives (what a query over one row per share would
/// answer): through records, cancels, partial and full refunds, zero amounts, several days and
/// currencies.
pub(super) fn partner_days_add_up_every_credited_share(b: Backend) {
    let c = b.start_with(Box::new(Split(Arc::default())), 16);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut ids = Vec::new();
    rt().block_on(async {
        // All at once, so groups sum several shares into one row of a partner's day.
        let mut writes = Vec::new();
        for i in 0..60 {
            let mut n = conv(&format!("o-{i}"), if i % 10 == 0 { 0 } else { rng.i64(1..5000) });
            n.occurred_at_ms += rng.u64(0..3) * 86_400_000;
            n.currency = Currency::parse(if rng.bool() { "USD" } else { "EUR" }).unwrap();
            ids.push(n.id());
            writes.push(c.answer(Op::Record(Fingerprinted::new(n)), None, 1_763_900_000_000));
        }
        for w in futures_util::future::join_all(writes).await {
            w.unwrap();
        }
        for _ in 0..150 {
            let id = ids[rng.usize(..ids.len())].clone();
            let transition = match rng.u8(..4) {
                0 => Transition::Cancel,
                1 => Transition::Refund(None),
                2 => Transition::Confirm,
                _ => Transition::Refund(Some(rng.i64(1..1500))),
            };
            // Refusals (nothing left, already cancelled, too much) change nothing.
            let _ = c.answer(Op::Transition { id, transition }, None, 1_763_900_100_000).await;
        }
    });
    let mut want: BTreeMap<(String, u32, String), [i64; 4]> = BTreeMap::new();
    let rows = b.conversion_rows();
    let (mut cancelled, mut refunded) = (0, 0);
    for (status, amount, refunded_minor, day, currency, attribution) in rows {
        let a: Attribution = serde_json::from_str(&attribution).unwrap();
        cancelled += usize::from(status == "cancelled");
        refunded += usize::from(refunded_minor > 0);
        for s in a.shares {
            let w = want.entry((s.partner, day, currency.clone())).or_default();
            let live = i64::from(status != "cancelled");
            w[0] += live;
            w[1] += live * s.amount_minor;
            w[2] += if amount > 0 { s.amount_minor * refunded_minor / amount } else { 0 };
            w[3] += 1 - live;
        }
    }
    assert!(cancelled > 5 && refunded > 5, "the run cancels and refunds: {cancelled} cancelled, {refunded} refunded");
    let reader = b.reader();
    let got = partner_day_rows(&*reader);
    assert_eq!(got, want);
    assert!(got.len() >= 6, "two partners, several days and currencies: {got:?}");

    // `link_days` likewise, each link's share being the sum of its counted touches'.
    let mut want: BTreeMap<(String, u32, String), [i64; 4]> = BTreeMap::new();
    for (status, amount, refunded_minor, day, currency, attribution) in b.conversion_rows() {
        let a: Attribution = serde_json::from_str(&attribution).unwrap();
        let mut links: BTreeMap<String, i64> = BTreeMap::new();
        for t in a.touches.iter().filter(|t| t.counted) {
            *links.entry(t.link.clone().unwrap()).or_default() += t.share_minor.unwrap();
        }
        for (link, share) in links.into_iter().filter(|(_, share)| *share > 0 || amount == 0) {
            let w = want.entry((link, day, currency.clone())).or_default();
            let live = i64::from(status != "cancelled");
            w[0] += live;
            w[1] += live * share;
            w[2] += if amount > 0 { share * refunded_minor / amount } else { 0 };
            w[3] += 1 - live;
        }
    }
    let link_rows = |reader: &dyn Reader| {
        let mut out = BTreeMap::new();
        for link in ["z1", "a1", "a2", "z9"] {
            for d in reader.link_days(LinkDaysScope::Link(link), 0, u32::MAX).unwrap() {
                let v = [d.conversions as i64, d.revenue_minor, d.refunded_minor, d.cancelled as i64];
                assert!(out.insert((link.to_string(), d.day, d.currency.to_string()), v).is_none());
            }
        }
        out
    };
    let got = link_rows(&*reader);
    assert_eq!(got, want);
    assert!(!got.keys().any(|k| k.0 == "z9"), "a touch that did not count credits nothing");
    // A channel's rows sum its links'; held to a partner, only that partner's links.
    let sum = |rows: Vec<DayConversions>| rows.iter().map(|d| d.revenue_minor).sum::<i64>();
    let web = |scope| sum(reader.link_days(scope, 0, u32::MAX).unwrap());
    let of = |link: &str| got.iter().filter(|(k, _)| k.0 == link).map(|(_, v)| v[1]).sum::<i64>();
    assert_eq!(web(LinkDaysScope::Channel(Channel::Web)), of("z1") + of("a2"));
    assert_eq!(web(LinkDaysScope::ChannelOfPartner(Channel::Web, "alice")), of("a2"));
    assert_eq!(web(LinkDaysScope::ChannelOfProgram(Channel::Qr, "demo")), of("a1"));

    // The migration's backfill, run over the same conversions, rebuilds the same rows.
    b.execute("DELETE FROM link_days");
    let sql = if matches!(b, Backend::Sqlite(_)) {
        include_str!("../../storage/sqlite/migrations/0010_link_days.sql")
    } else {
        include_str!("../../storage/pg/migrations/0009_link_days.sql")
    };
    b.execute(sql[sql.find("INSERT INTO link_days").unwrap()..].trim_end().trim_end_matches(';'));
    assert_eq!(link_rows(&*b.reader()), want, "the backfill agrees with the writer");
}
