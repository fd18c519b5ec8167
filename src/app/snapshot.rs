//! The edge's last catalog snapshot on local disk (`catalog.snapshot` in the data dir): what a
//! cluster edge serves from when it starts while the catalog database is unreachable.
//!
//! The file is text: a format line, a JSON header (the catalog's version, when it was written,
//! the programs and partners), one JSON array per link, and an `end` line with the CRC-32 of
//! everything before it and the count of links. It is written whole to a temporary file,
//! fsynced and renamed over the last one, so a crash leaves the old snapshot or the new one,
//! never a mix; a file that does not check out is refused whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::{LinkReadHead, LinkReader, LinkRow, NewPartner, NewProgram, Partner, Program};
use crate::model::{Channel, Status};

/// The snapshot's file name in the data dir.
pub const FILE_NAME: &str = "catalog.snapshot";

const FORMAT: &str = "clickgate-catalog-snapshot 1";

/// The longest line a snapshot may hold: a header with every program's rules, at most.
const LINE_BYTES_MAX: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Owner<T> {
    row_id: i64,
    status: String,
    spec: T,
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: i64,
    written_ms: u64,
    links: usize,
    programs: Vec<Owner<NewProgram>>,
    partners: Vec<Owner<NewPartner>>,
}

type LinkLine = (i64, i64, i64, String, String, String, String, String, String, Option<i64>, String);

/// What a snapshot read from disk was.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotInfo {
    /// The catalog version it holds.
    pub version: i64,
    /// When it was written (Unix ms).
    pub written_ms: u64,
    pub links: usize,
}

/// The snapshot's path under `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// A snapshot being written, fed by a full read of the catalog (`CatalogStore::read_links`
/// with no version); `finish` puts it in place.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    tmp: PathBuf,
    path: PathBuf,
    written_ms: u64,
    links: usize,
    head: bool,
    /// The first write that failed; `finish` reports it.
    error: Option<io::Error>,
}

impl SnapshotWriter {
    /// Starts `path`'s next version beside it.
    pub fn create(path: &Path, written_ms: u64) -> io::Result<SnapshotWriter> {
        let tmp = path.with_extension("snapshot.tmp");
        let out = BufWriter::with_capacity(1 << 16, File::create(&tmp)?);
        Ok(SnapshotWriter {
            out,
            crc: crc32fast::Hasher::new(),
            tmp,
            path: path.to_path_buf(),
            written_ms,
            links: 0,
            head: false,
            error: None,
        })
    }

    fn line(&mut self, f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) {
        if self.error.is_some() {
            return;
        }
        let mut buf = Vec::with_capacity(256);
        let written = f(&mut buf).and_then(|()| {
            buf.push(b'\n');
            self.crc.update(&buf);
            self.out.write_all(&buf)
        });
        if let Err(e) = written {
            self.error = Some(e);
        }
    }

    /// Writes the end line, fsyncs and renames the file over the last snapshot, and fsyncs the
    /// directory; answers how many links it holds.
    pub fn finish(mut self) -> io::Result<usize> {
        if let Some(e) = self.error.take() {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e);
        }
        if !self.head {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(io::Error::other("the catalog's read handed over no head"));
        }
        let end = format!("end {:08x} {}\n", self.crc.clone().finalize(), self.links);
        self.out.write_all(end.as_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.links)
    }
}

impl LinkReader for SnapshotWriter {
    fn head(&mut self, head: LinkReadHead) {
        let (programs, partners) = head.owners.unwrap_or_default();
        let owner = |row_id, status: Status| (row_id, status.as_str().to_string());
        let header = Header {
            version: head.version,
            written_ms: self.written_ms,
            links: head.links,
            programs: programs
                .into_iter()
                .map(|p| {
                    let (row_id, status) = owner(p.row_id, p.status);
                    Owner { row_id, status, spec: p.spec }
                })
                .collect(),
            partners: partners
                .into_iter()
                .map(|p| {
                    let (row_id, status) = owner(p.row_id, p.status);
                    Owner { row_id, status, spec: p.spec }
                })
                .collect(),
        };
        self.line(|b| {
            b.extend_from_slice(FORMAT.as_bytes());
            Ok(())
        });
        self.line(|b| serde_json::to_writer(b, &header).map_err(io::Error::other));
        self.head = true;
    }

    fn removed(&mut self, _code: &str) {}

    fn link(&mut self, r: LinkRow<'_>) {
        let row = (
            r.row_id,
            r.program_row_id,
            r.partner_row_id,
            r.code,
            r.destination,
            r.channel.as_str(),
            r.utm[0],
            r.utm[1],
            r.utm[2],
            r.expires_at,
            r.status.as_str(),
        );
        self.line(|b| serde_json::to_writer(b, &row).map_err(io::Error::other));
        self.links += 1;
    }
}

/// Hands one full read to two readers: the table's builder and the snapshot.
pub struct Tee<'a> {
    pub first: &'a mut dyn LinkReader,
    pub second: &'a mut dyn LinkReader,
}

impl LinkReader for Tee<'_> {
    fn head(&mut self, head: LinkReadHead) {
        let copy = LinkReadHead {
            version: head.version,
            full: head.full,
            owners: head.owners.clone(),
            others_changed: head.others_changed,
            links: head.links,
        };
        self.first.head(head);
        self.second.head(copy);
    }

    fn removed(&mut self, code: &str) {
        self.first.removed(code);
        self.second.removed(code);
    }

    fn link(&mut self, row: LinkRow<'_>) {
        self.first.link(row);
        self.second.link(row);
    }
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("the catalog snapshot {} is not usable: {why}", path.display()))
}

fn parsed<T>(path: &Path, what: &str, s: &str, parse: fn(&str) -> Option<T>) -> io::Result<T> {
    parse(s).ok_or_else(|| invalid(path, format!("{what} {s:?} is not a known value")))
}

/// Reads the snapshot at `path` into `reader`, as a full read of the catalog would hand it
/// over. An error (no file, a torn or altered one) leaves whatever `reader` built unusable:
/// the caller drops it.
pub fn read(path: &Path, reader: &mut dyn LinkReader) -> io::Result<SnapshotInfo> {
    let mut input = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut crc = crc32fast::Hasher::new();
    let mut line = Vec::new();
    let mut next = |line: &mut Vec<u8>| -> io::Result<bool> {
        line.clear();
        let n = (&mut input).take(LINE_BYTES_MAX as u64).read_until(b'\n', line)?;
        if n == 0 {
            return Ok(false);
        }
        if line.last() != Some(&b'\n') {
            return Err(invalid(path, "a line is torn or too long"));
        }
        Ok(true)
    };
    if !next(&mut line)? || line != format!("{FORMAT}\n").as_bytes() {
        return Err(invalid(path, "it does not start with the format line"));
    }
    crc.update(&line);
    if !next(&mut line)? {
        return Err(invalid(path, "it has no header"));
    }
    crc.update(&line);
    let header: Header = serde_json::from_slice(&line).map_err(|e| invalid(path, format!("its header: {e}")))?;
    let mut programs = Vec::with_capacity(header.programs.len());
    for p in header.programs {
        programs.push(Program { row_id: p.row_id, status: parsed(path, "a program's status", &p.status, Status::parse)?, spec: p.spec });
    }
    let mut partners = Vec::with_capacity(header.partners.len());
    for p in header.partners {
        partners.push(Partner { row_id: p.row_id, status: parsed(path, "a partner's status", &p.status, Status::parse)?, spec: p.spec });
    }
    let info = SnapshotInfo { version: header.version, written_ms: header.written_ms, links: 0 };
    reader.head(LinkReadHead {
        version: header.version,
        full: true,
        owners: Some((programs, partners)),
        others_changed: true,
        links: header.links,
    });
    let mut links = 0usize;
    loop {
        if !next(&mut line)? {
            return Err(invalid(path, "it has no end line"));
        }
        if line.starts_with(b"end ") {
            let want = format!("end {:08x} {links}\n", crc.clone().finalize());
            if line != want.as_bytes() {
                return Err(invalid(path, "its checksum or its count of links does not match"));
            }
            return Ok(SnapshotInfo { links, ..info });
        }
        crc.update(&line);
        let l: LinkLine = serde_json::from_slice(&line).map_err(|e| invalid(path, format!("link {links}: {e}")))?;
        reader.link(LinkRow {
            row_id: l.0,
            program_row_id: l.1,
            partner_row_id: l.2,
            code: &l.3,
            destination: &l.4,
            channel: parsed(path, "a link's channel", &l.5, Channel::parse)?,
            utm: [&l.6, &l.7, &l.8],
            expires_at: l.9,
            status: parsed(path, "a link's status", &l.10, Status::parse)?,
        });
        links += 1;
    }
}

#[cfg(test)]
mod tests;
