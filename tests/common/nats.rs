//! A nats-server of a test's own.
//!
//! Each test starts its own `nats-server -js` on a free 127.0.0.1 port with its own store
//! directory, so it can stop and restart the broker without touching a shared one. The tests
//! that need one are ignored unless asked for (`cargo test -- --include-ignored`); when they
//! run, a missing `nats-server` fails them with a message saying how to install it.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clickgate::events::ClickEvent;
use clickgate::model::{ClickSigner, VisitorId};

/// Names the nats-server binary to run instead of searching for one.
const NATS_SERVER_ENV: &str = "CLICKGATE_TEST_NATS_SERVER";

/// The nats-server the tests start: `CLICKGATE_TEST_NATS_SERVER` when set, else `nats-server`
/// on PATH or in the sbin directories Debian installs it to. Fails the test, saying how to
/// install one, when there is none.
pub fn nats_server() -> PathBuf {
    let named = std::env::var_os(NATS_SERVER_ENV).map(PathBuf::from);
    let found = match &named {
        Some(bin) => bin.is_file().then(|| bin.clone()),
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
                .map(|dir| dir.join("nats-server"))
                .find(|p| p.is_file())
        }
    };
    found.unwrap_or_else(|| {
        let looked = match &named {
            Some(bin) => format!("{NATS_SERVER_ENV}={} is no file", bin.display()),
            None => "none is on PATH nor in /usr/sbin or /usr/local/sbin".to_string(),
        };
        panic!(
            "this test needs nats-server (NATS with JetStream), and {looked}; it starts its own on a free \
             127.0.0.1 port. Install it (on Debian: apt-get install nats-server; elsewhere a release from \
             https://github.com/nats-io/nats-server/releases) or name it in {NATS_SERVER_ENV}. Without it, run \
             cargo test without --include-ignored: it lists these tests as ignored"
        )
    })
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
    /// Starts `nats_server()` on a free port; fails the test when there is no nats-server.
    pub fn start() -> Broker {
        init_logs();
        let bin = nats_server();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut broker = Broker { bin, port, store: tempfile::tempdir().unwrap(), child: None };
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
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                let log = std::fs::read_to_string(store.join("nats.log")).unwrap_or_default();
                panic!("{} exited with {status} before listening on 127.0.0.1:{}; its log:\n{log}", self.bin.display(), self.port);
            }
            assert!(Instant::now() < deadline, "nats-server did not listen on 127.0.0.1:{}", self.port);
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
            visitor_id: VisitorId([(n % 251) as u8; 16]),
            country: Some(*b"FR"),
            asn: 3215,
            ua_hash: n,
            ip_hash: Some(n),
            ..clickgate::testing::click(signer.mint(base_ms + n, 7, 9), base_ms + n)
        })
        .collect()
}
