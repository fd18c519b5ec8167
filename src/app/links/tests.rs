use proptest::prelude::*;
use rusqlite::{params, Connection};

use super::*;
use crate::catalog::{Catalogue, Kind, NewLink, NewPartner};
use crate::edge::links::EdgeLink;
use crate::model::Channel;
use crate::storage::sqlite::{schema, SqliteCatalog};

fn seeded() -> (tempfile::TempDir, SqliteCatalog) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCatalog::open(dir.path()).unwrap();
    store.add_program(&crate::catalog::tests::program()).unwrap();
    for id in ["alice", "bob"] {
        store.add_partner(&NewPartner { id: id.into(), name: id.into(), email: String::new(), ..NewPartner::default() }).unwrap();
    }
    (dir, store)
}

fn new_link(code: &str) -> NewLink {
    NewLink {
        code: code.into(),
        program: "shop".into(),
        partner: "alice".into(),
        destination: format!("https://example.com/p/{code}"),
        channel: Channel::Web,
        utm_source: "cg".into(),
        utm_medium: String::new(),
        utm_campaign: String::new(),
        expires_at: None,
    }
}

type Seen = (String, u32, u32, String, String, bool, u64, String, String, String);

fn seen(l: &EdgeLink<'_>) -> Seen {
    let (mut prefix, mut plain) = (String::new(), String::new());
    l.push_location_prefix(&mut prefix);
    l.push_location_plain(&mut plain);
    (
        l.code.to_string(),
        l.link_id,
        l.partner_id,
        l.program.to_string(),
        l.partner.to_string(),
        l.active,
        l.expires_at_ms,
        prefix,
        plain,
        l.fragment.to_string(),
    )
}

fn dump(t: &LinkTable) -> Vec<Seen> {
    let mut all: Vec<Seen> = t.iter().map(|l| seen(&l)).collect();
    all.sort();
    all
}

#[test]
fn a_link_change_applies_only_the_change_and_a_program_change_reloads_the_catalog_too() {
    let (_dir, store) = seeded();
    for i in 0..50 {
        store.add_link(&new_link(&format!("l{i}"))).unwrap();
    }
    let mut updater = LinkUpdater::default();
    let table = updater.load(&store).unwrap();
    assert_eq!((table.len(), table.version()), (50, store.version().unwrap()));
    assert!(updater.refresh(&store, &table, false).unwrap().is_none(), "nothing changed");

    store.add_link(&new_link("new")).unwrap();
    store.set_status(Kind::Link, "l3", Status::Paused).unwrap();
    let (table, done) = updater.refresh(&store, &table, false).unwrap().expect("two changes");
    assert_eq!(done, Refreshed { full: false, links: 3, others_changed: false }, "l3's old code, and two rows");
    assert!(table.get("new").unwrap().active && !table.get("l3").unwrap().active);
    assert_eq!(dump(&table), dump(&load_links(&store).unwrap()));

    store.set_status(Kind::Partner, "alice", Status::Paused).unwrap();
    let (table, done) = updater.refresh(&store, &table, false).unwrap().expect("a partner changed");
    assert_eq!(done, Refreshed { full: false, links: 0, others_changed: true });
    assert!(!table.get("l0").unwrap().active, "a paused partner's links go to the fallback");

    let (table, done) = updater.refresh(&store, &table, true).unwrap().expect("SIGHUP reads everything");
    assert!(done.full && done.others_changed);
    assert_eq!(dump(&table), dump(&load_links(&store).unwrap()));
}

#[test]
fn a_table_the_trimmed_log_no_longer_reaches_is_read_whole() {
    let (_dir, store) = seeded();
    let mut updater = LinkUpdater::default();
    let old = updater.load(&store).unwrap();
    let rows: Vec<NewLink> = (0..2_000).map(|i| new_link(&format!("l{i}"))).collect();
    let program = store.get_program("shop").unwrap();
    let partner = store.partners().unwrap()[0].row_id;
    let batch: Vec<_> = rows
        .iter()
        .map(|l| crate::catalog::NewLinkRow { link: l, status: Status::Active, program_row_id: program.row_id, partner_row_id: partner })
        .collect();
    store.insert_links(&batch).unwrap();
    assert_eq!(store.trim_changes(1_000).unwrap(), 1_000 + 3, "the seed's three entries and the oldest 1000 links'");
    assert_eq!(store.trim_changes(1_000).unwrap(), 0, "already trimmed");
    let (table, done) = updater.refresh(&store, &old, false).unwrap().expect("changed");
    assert!(done.full, "the log starts after the table's version");
    assert_eq!(table.len(), 2_000);
    assert_eq!(table.version(), store.version().unwrap());
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8, u8),
    Status(usize, u8),
    Expires(usize, i64),
    Destination(usize, u8),
    Code(usize, u8),
    Delete(usize),
    Partner(bool, bool),
    Program(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), any::<u8>()).prop_map(|(c, d)| Op::Add(c, d)),
        3 => (any::<usize>(), 0..3u8).prop_map(|(i, s)| Op::Status(i, s)),
        1 => (any::<usize>(), 0..3_000_000_000i64).prop_map(|(i, s)| Op::Expires(i, s)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, d)| Op::Destination(i, d)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, c)| Op::Code(i, c)),
        2 => any::<usize>().prop_map(Op::Delete),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(b, a)| Op::Partner(b, a)),
        1 => any::<bool>().prop_map(Op::Program),
    ]
}

/// One op as plain SQL on a connection of its own, as any writer of the store could make it.
fn run(conn: &Connection, op: &Op) {
    const ROW: &str = "(SELECT id FROM links ORDER BY id LIMIT 1 OFFSET (?1 % max(1, (SELECT count(*) FROM links))))";
    let status = |s: u8| ["active", "paused", "expired"][usize::from(s) % 3];
    let dest = |d: u8| match d % 3 {
        0 => format!("https://example.com/p/{d}"),
        1 => format!("https://example.com/a/b?x={d}#f"),
        _ => "https://example.com".to_string(),
    };
    let i = |i: &usize| (*i % 1_000) as i64;
    let r = match op {
        Op::Add(c, d) => conn.execute(
            "INSERT OR IGNORE INTO links (code, program_id, partner_id, destination, channel, utm_source, utm_medium, utm_campaign)
             VALUES (?1, 1, 1 + ?2 % 2, ?3, 'email', ?4, '', '')",
            params![format!("k{}", c % 32), d, dest(*d), if d % 2 == 0 { "cg" } else { "" }],
        ),
        Op::Status(n, s) => conn.execute(&format!("UPDATE links SET status = ?2 WHERE id = {ROW}"), params![i(n), status(*s)]),
        Op::Expires(n, s) => conn.execute(&format!("UPDATE links SET expires_at = ?2 WHERE id = {ROW}"), params![i(n), s]),
        Op::Destination(n, d) => conn.execute(&format!("UPDATE links SET destination = ?2 WHERE id = {ROW}"), params![i(n), dest(*d)]),
        Op::Code(n, c) => {
            conn.execute(&format!("UPDATE OR IGNORE links SET code = ?2 WHERE id = {ROW}"), params![i(n), format!("k{}", c % 32)])
        }
        Op::Delete(n) => conn.execute(&format!("DELETE FROM links WHERE id = {ROW}"), params![i(n)]),
        Op::Partner(bob, active) => conn.execute(
            "UPDATE partners SET status = ?2 WHERE slug = ?1",
            params![if *bob { "bob" } else { "alice" }, if *active { "active" } else { "paused" }],
        ),
        Op::Program(active) => conn.execute("UPDATE programs SET status = ?1", params![if *active { "active" } else { "paused" }]),
    };
    r.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random batches written to the store, each in one transaction, and applied from the
    /// change log one refresh at a time, always give the table a fresh read gives.
    #[test]
    fn the_table_kept_up_to_date_agrees_with_a_fresh_read(batches in prop::collection::vec(prop::collection::vec(op(), 1..10), 1..8)) {
        let (dir, store) = seeded();
        let mut conn = Connection::open(schema::path(dir.path())).unwrap();
        let mut updater = LinkUpdater::default();
        let mut table = updater.load(&store).unwrap();
        for ops in &batches {
            let tx = conn.transaction().unwrap();
            for op in ops {
                run(&tx, op);
            }
            tx.commit().unwrap();
            if let Some((next, done)) = updater.refresh(&store, &table, false).unwrap() {
                prop_assert!(!done.full, "the log reaches back");
                table = next;
            }
            prop_assert_eq!(table.version(), store.version().unwrap());
            prop_assert_eq!(dump(&table), dump(&load_links(&store).unwrap()));
        }
    }
}
