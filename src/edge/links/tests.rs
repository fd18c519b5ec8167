use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use proptest::prelude::*;

use super::*;

fn program(row_id: i64, id: &'static str, active: bool) -> ProgramSpec<'static> {
    ProgramSpec {
        row_id,
        id,
        fallback_url: "https://example.com/",
        country_allow: &[],
        country_deny: &[],
        blocked_action: BlockedAction::Redirect,
        active,
    }
}

fn link<'a>(link_id: u32, code: &'a str, destination: &'a str, utm: [&'a str; 3]) -> LinkSpec<'a> {
    LinkSpec {
        link_id,
        program_row_id: 1,
        partner_row_id: 7,
        code,
        destination,
        channel: Channel::Web,
        utm,
        expires_at_s: None,
        active: true,
    }
}

const PARTNERS: [PartnerSpec<'static>; 1] = [PartnerSpec { row_id: 7, id: "alice", active: true }];

/// A link as a request sees it, owned, with both `Location` prefixes spelt out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    code: String,
    link_id: u32,
    partner_id: u32,
    program: String,
    partner: String,
    channel: &'static str,
    active: bool,
    expires_at_ms: u64,
    prefix: String,
    plain: String,
    fragment: String,
    fallback: String,
}

fn seen(l: &EdgeLink<'_>) -> Seen {
    let (mut prefix, mut plain) = (String::new(), String::new());
    l.push_location_prefix(&mut prefix);
    l.push_location_plain(&mut plain);
    assert_eq!(prefix.len(), l.location_len());
    Seen {
        code: l.code.to_string(),
        link_id: l.link_id,
        partner_id: l.partner_id,
        program: l.program.to_string(),
        partner: l.partner.to_string(),
        channel: l.channel.as_str(),
        active: l.active,
        expires_at_ms: l.expires_at_ms,
        prefix,
        plain,
        fragment: l.fragment.to_string(),
        fallback: l.fallback.to_string(),
    }
}

/// Every link the table serves, sorted, each also found by `get`.
fn dump(t: &LinkTable) -> Vec<Seen> {
    let mut all: Vec<Seen> = t.iter().map(|l| seen(&l)).collect();
    all.sort();
    for s in &all {
        assert_eq!(t.get(&s.code).map(|l| seen(&l)).as_ref(), Some(s), "get finds what iter lists");
    }
    all
}

#[test]
fn locations_keep_the_destination_add_the_tags_and_end_ready_for_the_click_id() {
    let check = |destination: &str, utm: [&str; 3], prefix: &str, plain: &str, fragment: &str| {
        let t = LinkTable::build(1, &[program(1, "shop", true)], &PARTNERS, [link(1, "x", destination, utm)]);
        let s = seen(&t.get("x").unwrap());
        assert_eq!((s.prefix.as_str(), s.plain.as_str(), s.fragment.as_str()), (prefix, plain, fragment), "{destination}");
    };
    let cg = ["cg", "", ""];
    let none = ["", "", ""];
    check("https://example.com/a", none, "https://example.com/a?cgid=", "https://example.com/a", "");
    check("https://example.com/a", cg, "https://example.com/a?utm_source=cg&cgid=", "https://example.com/a?utm_source=cg", "");
    check(
        "https://example.com/a?b=1#top",
        cg,
        "https://example.com/a?b=1&utm_source=cg&cgid=",
        "https://example.com/a?b=1&utm_source=cg",
        "#top",
    );
    check("https://example.com/a?", none, "https://example.com/a?cgid=", "https://example.com/a?", "");
    check(
        "https://example.com/a?b=1&",
        ["s", "m", "c"],
        "https://example.com/a?b=1&utm_source=s&utm_medium=m&utm_campaign=c&cgid=",
        "https://example.com/a?b=1&utm_source=s&utm_medium=m&utm_campaign=c",
        "",
    );
    check("https://example.com", none, "https://example.com?cgid=", "https://example.com", "");
    check(
        "https://example.com?q=1",
        ["", "", "c"],
        "https://example.com?q=1&utm_campaign=c&cgid=",
        "https://example.com?q=1&utm_campaign=c",
        "",
    );
    check(
        "http://example.com:8080/d/e/f.html#x",
        none,
        "http://example.com:8080/d/e/f.html?cgid=",
        "http://example.com:8080/d/e/f.html",
        "#x",
    );
}

#[test]
fn links_of_unknown_owners_or_bad_destinations_are_left_out_and_owners_status_counts() {
    let programs = [program(1, "shop", true), program(2, "paused", false)];
    let mut l3 = link(3, "other-program", "https://example.com/", ["", "", ""]);
    l3.program_row_id = 2;
    let mut l4 = link(4, "no-partner", "https://example.com/", ["", "", ""]);
    l4.partner_row_id = 99;
    let mut l5 = link(5, "no-program", "https://example.com/", ["", "", ""]);
    l5.program_row_id = 99;
    let links = [link(1, "ok", "https://example.com/", ["", "", ""]), link(2, "bad", "javascript:alert(1)", ["", "", ""]), l3, l4, l5];
    let t = LinkTable::build(1, &programs, &PARTNERS, links);
    assert!(t.get("ok").unwrap().active);
    assert!(!t.get("other-program").unwrap().active, "its program is paused");
    assert_eq!(t.get("other-program").unwrap().program.as_ref(), "paused");
    for gone in ["bad", "no-partner", "no-program", "nothing"] {
        assert!(t.get(gone).is_none(), "{gone}");
    }
    assert_eq!(t.get("ok").unwrap().partner_id, 7, "click ids carry the partner's row id");
}

#[test]
fn links_share_their_destination_prefix_and_tags() {
    let dests: Vec<String> = (0..100).map(|i| format!("https://example.com/p/item-{i}")).collect();
    let codes: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    let mut interner = Interner::default();
    let mut b = TableBuilder::new(1, &[program(1, "shop", true)], &PARTNERS, 100, &mut interner);
    for i in 0..100 {
        b.push(&link(i as u32, &codes[i], &dests[i], ["news", "email", "spring"]));
    }
    let t = b.finish();
    assert_eq!(interner.len(), 2, "one prefix and one set of tags for a hundred links");
    assert_eq!(t.len(), 100);
    let first = t.get("c0").unwrap();
    assert_eq!(first.origin, "https://example.com/p/");
    assert!(std::ptr::eq(first.origin, t.get("c99").unwrap().origin), "one copy");
}

#[test]
fn a_batch_rebuilds_only_the_shards_it_touches() {
    let codes: Vec<String> = (0..5_000).map(|i| format!("code-{i}")).collect();
    let programs = [program(1, "shop", true)];
    let t = LinkTable::build(
        1,
        &programs,
        &PARTNERS,
        codes.iter().enumerate().map(|(i, c)| link(i as u32, c, "https://example.com/a", ["", "", ""])),
    );
    assert_eq!(t.shard_count(), 128);
    let removed = vec!["code-1".to_string()];
    let batch = Batch { version: 2, removed: &removed, owners: None };
    let changed =
        [link(9_000, "new", "https://example.com/new", ["", "", ""]), link(2, "code-2", "https://example.com/moved", ["", "", ""])];
    let u = t.apply(&batch, changed, &mut Interner::default());
    assert_eq!((u.version(), u.len()), (2, 5_000));
    assert!(u.get("code-1").is_none() && u.get("new").is_some());
    let mut prefix = String::new();
    u.get("code-2").unwrap().push_location_prefix(&mut prefix);
    assert_eq!(prefix, "https://example.com/moved?cgid=");
    let rebuilt = t.shards.iter().zip(u.shards.iter()).filter(|(a, b)| !Arc::ptr_eq(a, b)).count();
    assert!((1..=3).contains(&rebuilt), "{rebuilt} shards rebuilt for three links");
    assert_eq!(t.len(), 5_000, "the old table is unchanged");
    assert!(t.get("code-1").is_some() && t.get("new").is_none());
}

#[test]
fn a_table_that_grows_fourfold_is_redistributed() {
    let codes: Vec<String> = (0..20_000).map(|i| format!("c{i}")).collect();
    let programs = [program(1, "shop", true)];
    let mut t = LinkTable::build(1, &programs, &PARTNERS, codes[..1000].iter().map(|c| link(1, c, "https://example.com/", ["", "", ""])));
    let first = t.shard_count();
    let mut interner = Interner::default();
    for (n, chunk) in codes[1000..].chunks(1000).enumerate() {
        let batch = Batch { version: n as i64 + 2, removed: &[], owners: None };
        t = t.apply(&batch, chunk.iter().map(|c| link(1, c, "https://example.com/", ["", "", ""])), &mut interner);
    }
    assert_eq!(t.len(), 20_000);
    assert!(t.shard_count() >= first * 4, "{} shards, from {first}", t.shard_count());
    assert!(codes.iter().all(|c| t.get(c).is_some()));
}

// ---------------------------------------------------------------------------------------------
// Random batches, applied one by one, always give the table a fresh build gives.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ModelLink {
    code: String,
    program: i64,
    destination: String,
    utm: [String; 3],
    expires_at_s: Option<i64>,
    active: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Add { code: u8, program: bool, dest: u8, utm: u8 },
    Pause(usize),
    Resume(usize),
    Expire(usize, i64),
    Destination(usize, u8),
    Code(usize, u8),
    Delete(usize),
    PauseProgram(bool),
    ResumeProgram(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), any::<bool>(), any::<u8>(), any::<u8>()).prop_map(|(code, program, dest, utm)| Op::Add { code, program, dest, utm }),
        2 => any::<usize>().prop_map(Op::Pause),
        1 => any::<usize>().prop_map(Op::Resume),
        1 => (any::<usize>(), 0..3_000_000_000i64).prop_map(|(i, s)| Op::Expire(i, s)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, d)| Op::Destination(i, d)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, c)| Op::Code(i, c)),
        2 => any::<usize>().prop_map(Op::Delete),
        1 => any::<bool>().prop_map(Op::PauseProgram),
        1 => any::<bool>().prop_map(Op::ResumeProgram),
    ]
}

fn destination(d: u8) -> String {
    match d % 4 {
        0 => format!("https://example.com/p/{d}"),
        1 => format!("https://shop.example.com/a/b?x={d}#f{d}"),
        2 => "https://example.com".to_string(),
        _ => format!("https://example.com/q?{d}&"),
    }
}

/// The catalog as a store holds it, and what a change log records.
#[derive(Default)]
struct Model {
    links: BTreeMap<i64, ModelLink>,
    next_row: i64,
    programs_active: [bool; 2],
}

impl Model {
    fn programs(&self) -> [ProgramSpec<'static>; 2] {
        [program(1, "shop", self.programs_active[0]), program(2, "other", self.programs_active[1])]
    }

    fn spec(&self, row: i64) -> LinkSpec<'_> {
        let l = &self.links[&row];
        LinkSpec {
            link_id: row as u32,
            program_row_id: l.program,
            partner_row_id: 7,
            code: &l.code,
            destination: &l.destination,
            channel: Channel::Email,
            utm: [&l.utm[0], &l.utm[1], &l.utm[2]],
            expires_at_s: l.expires_at_s,
            active: l.active,
        }
    }

    fn fresh(&self) -> LinkTable {
        LinkTable::build(0, &self.programs(), &PARTNERS, self.links.keys().map(|r| self.spec(*r)))
    }

    fn row(&self, i: usize) -> Option<i64> {
        (!self.links.is_empty()).then(|| *self.links.keys().nth(i % self.links.len()).unwrap())
    }

    fn code_free(&self, code: &str) -> bool {
        self.links.values().all(|l| l.code != code)
    }

    /// Applies one op; records (row, code before) for a link it changed, and whether a program changed.
    fn apply(&mut self, op: &Op, log: &mut Vec<(i64, Option<String>)>, owners: &mut bool) {
        fn touch(m: &mut Model, log: &mut Vec<(i64, Option<String>)>, i: usize, f: &dyn Fn(&mut ModelLink)) {
            if let Some(row) = m.row(i) {
                let l = m.links.get_mut(&row).unwrap();
                log.push((row, Some(l.code.clone())));
                f(l);
            }
        }
        match op {
            Op::Add { code, program, dest, utm } => {
                let code = format!("k{}", code % 64);
                if self.code_free(&code) {
                    self.next_row += 1;
                    let utm = match utm % 3 {
                        0 => [String::new(), String::new(), String::new()],
                        1 => ["news".into(), "email".into(), String::new()],
                        _ => [String::new(), String::new(), format!("c{}", utm % 5)],
                    };
                    let l = ModelLink {
                        code,
                        program: 1 + i64::from(*program),
                        destination: destination(*dest),
                        utm,
                        expires_at_s: None,
                        active: true,
                    };
                    self.links.insert(self.next_row, l);
                    log.push((self.next_row, None));
                }
            }
            Op::Pause(i) => touch(self, log, *i, &|l| l.active = false),
            Op::Resume(i) => touch(self, log, *i, &|l| l.active = true),
            Op::Expire(i, s) => touch(self, log, *i, &|l| l.expires_at_s = Some(*s)),
            Op::Destination(i, d) => touch(self, log, *i, &|l| l.destination = destination(*d)),
            Op::Code(i, c) => {
                let code = format!("k{}", c % 64);
                if self.code_free(&code) {
                    touch(self, log, *i, &|l| l.code = code.clone());
                }
            }
            Op::Delete(i) => {
                if let Some(row) = self.row(*i) {
                    let l = self.links.remove(&row).unwrap();
                    log.push((row, Some(l.code)));
                }
            }
            Op::PauseProgram(p) => {
                self.programs_active[usize::from(*p)] = false;
                *owners = true;
            }
            Op::ResumeProgram(p) => {
                self.programs_active[usize::from(*p)] = true;
                *owners = true;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_batches_applied_one_by_one_agree_with_a_fresh_build(batches in prop::collection::vec(prop::collection::vec(op(), 0..12), 1..16)) {
        let mut model = Model { programs_active: [true, true], ..Model::default() };
        let mut table = model.fresh();
        let mut interner = Interner::default();
        for (n, ops) in batches.iter().enumerate() {
            let (mut log, mut owners) = (Vec::new(), false);
            for op in ops {
                model.apply(op, &mut log, &mut owners);
            }
            // What a store's change log gives: the codes links had, and the rows as they are now.
            let removed: Vec<String> = log.iter().filter_map(|(_, c)| c.clone()).collect();
            let mut rows: Vec<i64> = log.iter().map(|(r, _)| *r).filter(|r| model.links.contains_key(r)).collect();
            rows.sort_unstable();
            rows.dedup();
            let programs = model.programs();
            let batch = Batch { version: n as i64 + 1, removed: &removed, owners: owners.then_some((&programs[..], &PARTNERS[..])) };
            table = table.apply(&batch, rows.iter().map(|r| model.spec(*r)), &mut interner);
            prop_assert_eq!(dump(&table), dump(&model.fresh()));
            prop_assert_eq!(table.len(), model.links.len());
        }
    }
}

/// Readers that load the table while a writer swaps in batch after batch never see part of a
/// batch: batch n gives every link of a group destination `/v{n}/` and pauses the group's odd
/// links when n is odd, so every link of the group must agree.
#[test]
fn a_reader_never_sees_half_a_batch() {
    let group: Vec<String> = (0..64).map(|i| format!("g{i}")).collect();
    let others: Vec<String> = (0..2_000).map(|i| format!("o{i}")).collect();
    let dest = |n: usize, i: usize| format!("https://example.com/v{n}/{i}");
    let programs = [program(1, "shop", true)];
    let first: Vec<String> = (0..group.len()).map(|i| dest(0, i)).collect();
    let links = group.iter().zip(&first).map(|(c, d)| link(1, c, d, ["", "", ""]));
    let table =
        LinkTable::build(0, &programs, &PARTNERS, links.chain(others.iter().map(|c| link(2, c, "https://example.com/o", ["", "", ""]))));
    let cell = Arc::new(ArcSwap::from_pointee(table));
    let batches = 300;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (cell, done, group) = (cell.clone(), done.clone(), group.clone());
            std::thread::spawn(move || {
                let mut seen = 0usize;
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::Acquire);
                    let t = cell.load();
                    let n = t.version() as usize;
                    for (i, code) in group.iter().enumerate() {
                        let l = t.get(code).expect("a group link is always there");
                        let mut prefix = String::new();
                        l.push_location_prefix(&mut prefix);
                        assert_eq!(prefix, format!("https://example.com/v{n}/{i}?cgid="), "version {n}, link {i}");
                        assert_eq!(l.active, n % 2 == 0 || i % 2 == 0, "version {n}, link {i}");
                    }
                    seen += 1;
                    if finished {
                        return seen;
                    }
                }
            })
        })
        .collect();
    let mut interner = Interner::default();
    for n in 1..=batches {
        let dests: Vec<String> = (0..group.len()).map(|i| dest(n, i)).collect();
        let batch = Batch { version: n as i64, removed: &[], owners: None };
        let links = group
            .iter()
            .zip(&dests)
            .enumerate()
            .map(|(i, (c, d))| LinkSpec { active: n % 2 == 0 || i % 2 == 0, ..link(1, c, d, ["", "", ""]) });
        let next = cell.load().apply(&batch, links, &mut interner);
        cell.store(Arc::new(next));
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        assert!(r.join().expect("a reader saw half a batch") > 0);
    }
    assert_eq!(cell.load().version(), batches as i64);
}
