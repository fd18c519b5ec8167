//! A nats-server of a test's own.
//!
//! Each test starts its own `nats-server -js` on a free port with its own store directory, so it
//! can stop and restart the broker without touching a shared one. Without `nats-server` the
//! tests say so and pass, unless `CLICKGATE_REQUIRE_SERVICES=1`, which makes that a failure.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clickgate::events::ClickEvent;
use clickgate::model::Channel;
use clickgate::model::{ClickSigner, VisitorId};
use clickgate::model::{Reasons, Verdict};

pub const SKIP: &str = "skipping: nats-server not found on PATH; install it with apt-get install nats-server";

/// `nats-server` on PATH, or in the sbin directories Debian installs it to.
pub fn nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

pub fn nats_or_skip() -> Option<PathBuf> {
    let found = nats_server();
    if found.is_none() {
        if std::env::var("CLICKGATE_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{SKIP}");
        }
        eprintln!("{SKIP}");
    }
    found
}

/// A nats-server of this test's own, stopped on drop.
pub struct Broker {
    bin: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

/// Logs go to the test's captured output, shown when it fails; `RUST_LOG` picks the level.
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "clickgate=debug,async_nats=info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

impl Broker {
    pub fn start(bin: &Path) -> Broker {
        init_logs();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut broker = Broker { bin: bin.to_path_buf(), port, store: tempfile::tempdir().unwrap(), child: None };
        broker.restart();
        broker
    }

    /// Starts the server (again) on the same port and store directory, and waits until it
    /// accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let store = self.store.path();
        let child = Command::new(&self.bin)
            .arg("-js")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(store)
            .arg("-l")
            .arg(store.join("nats.log"))
            .args(std::env::var("CLICKGATE_NATS_TRACE").is_ok().then_some("-DV"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server outright, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Valid clicks on the fixture's `demo` link, click `n` at `base_ms + n`, signed with `key`
/// (key id 1); 251 visitors take turns.
pub fn click_events(key: &[u8], base_ms: u64, range: std::ops::Range<u64>) -> Vec<ClickEvent> {
    let signer = ClickSigner::new(&[(1, key.to_vec())]);
    range
        .map(|n| ClickEvent {
            click_id: signer.mint(base_ms + n, 7, 9),
            ts_ms: base_ms + n,
            program: "demo".into(),
            partner: "alice".into(),
            link: "demo".into(),
            channel: Channel::Web,
            sub_ids: None,
            verdict: Verdict::Valid,
            reasons: Reasons::default(),
            observed: Reasons::default(),
            visitor_id: VisitorId([(n % 251) as u8; 16]),
            new_visitor: false,
            country: Some(*b"FR"),
            asn: 3215,
            ua_hash: n,
            ip: None,
            ip_hash: Some(n),
        })
        .collect()
}
