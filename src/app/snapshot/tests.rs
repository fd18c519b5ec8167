use super::*;
use crate::app::links::LinkUpdater;
use crate::catalog::{CatalogStore, Catalogue, Kind, NewLink};
use crate::storage::sqlite::SqliteCatalog;

fn seeded() -> (tempfile::TempDir, SqliteCatalog) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCatalog::open(dir.path()).unwrap();
    store.add_program(&crate::catalog::tests::program()).unwrap();
    store.add_partner(&NewPartner { id: "alice".into(), name: "Alice".into(), ..NewPartner::default() }).unwrap();
    for code in ["a", "b", "c"] {
        store
            .add_link(&NewLink {
                code: code.into(),
                program: "shop".into(),
                partner: "alice".into(),
                destination: format!("https://example.com/{code}?x=1"),
                channel: Channel::Qr,
                utm_source: "cg".into(),
                utm_medium: "qr".into(),
                utm_campaign: String::new(),
                expires_at: Some(2_000_000_000),
            })
            .unwrap();
    }
    store.set_status(Kind::Link, "b", Status::Paused).unwrap();
    (dir, store)
}

fn write(store: &SqliteCatalog, path: &Path) -> usize {
    let mut w = SnapshotWriter::create(path, 1_700_000_000_000).unwrap();
    store.read_links(None, 0, &mut w).unwrap();
    w.finish().unwrap()
}

fn load(path: &Path) -> Result<(crate::edge::links::LinkTable, SnapshotInfo), crate::catalog::CatalogError> {
    let mut info = None;
    let table = LinkUpdater::default().load_with(|r| {
        info = Some(read(path, r).map_err(|e| crate::catalog::CatalogError::Storage(e.to_string()))?);
        Ok(())
    })?;
    Ok((table, info.unwrap()))
}

/// A table built from the snapshot redirects exactly as one built from the store.
#[test]
fn a_snapshot_builds_the_table_the_store_builds() {
    let (dir, store) = seeded();
    let path = path(dir.path());
    assert_eq!(write(&store, &path), 3);
    let (table, info) = load(&path).unwrap();
    let direct = crate::app::load_links(&store).unwrap();
    assert_eq!((info.version, info.written_ms, info.links), (store.version().unwrap(), 1_700_000_000_000, 3));
    assert_eq!((table.version(), table.len()), (direct.version(), direct.len()));
    for code in ["a", "b", "c"] {
        let (x, y) = (table.get(code).unwrap(), direct.get(code).unwrap());
        let (mut lx, mut ly) = (String::new(), String::new());
        x.push_location_prefix(&mut lx);
        y.push_location_prefix(&mut ly);
        assert_eq!((x.active, x.expires_at_ms, x.link_id, lx), (y.active, y.expires_at_ms, y.link_id, ly), "{code}");
    }
    assert!(!table.get("b").unwrap().active);
    assert!(!dir.path().join("catalog.snapshot.tmp").exists(), "the temporary file was renamed");
}

/// A torn, altered or missing snapshot is refused whole, never half read.
#[test]
fn a_damaged_snapshot_is_refused() {
    let (dir, store) = seeded();
    let path = path(dir.path());
    assert!(load(&path).is_err(), "no file");
    write(&store, &path);
    let good = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("torn", good[..good.len() - 30].to_vec()),
        ("no end line", good[..good.iter().rposition(|b| *b == b'e').unwrap()].to_vec()),
        ("altered", String::from_utf8(good.clone()).unwrap().replacen("https://example.com/a", "https://example.org/a", 1).into_bytes()),
        ("empty", Vec::new()),
        ("another format", b"clickgate-catalog-snapshot 9\n".to_vec()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, bytes).unwrap();
        let e = load(&path).err().unwrap_or_else(|| panic!("{what}: read"));
        assert!(e.to_string().contains("not usable"), "{what}: {e}");
    }
}
