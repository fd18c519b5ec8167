//! Helpers for end-to-end tests: the real binary, real sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod crash;
pub mod nats;
pub mod stream;

pub const BIN: &str = env!("CARGO_BIN_EXE_clickgate");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Config lines adding partner bob to the fixture's program `demo`, with his link `bob`
/// and his coupon `BOB10`.
pub const BOB: &str = r#"
[[demo.partners]]
id = "bob"
name = "Bob"
email = "bob@example.com"
[[demo.links]]
code = "bob"
program = "demo"
partner = "bob"
destination = "https://example.com/bob"
[[demo.coupons]]
code = "BOB10"
program = "demo"
partner = "bob"
"#;

/// A config over the committed fixtures: fixture GeoIP databases and crawler list.
pub fn fixture_config(extra: &str) -> String {
    let fix = format!("{ROOT}/tests/fixtures");
    format!(
        r#"
[edge]
header_read_timeout_ms = 500
[checks.ip_rules]
deny = ["203.0.113.0/24"]
[checks.geoip]
country_db = "{fix}/geoip/GeoIP2-Country-Test.mmdb"
asn_db = "{fix}/geoip/GeoLite2-ASN-Test.mmdb"
datacenter_asns = [15169]
[checks.bots]
crawler_list = "{fix}/bots/crawler-user-agents.json"
{extra}
[[demo.programs]]
id = "demo"
name = "Demo"
currency = "USD"
allowed_domains = ["example.com"]
fallback_url = "https://example.com/"
country_deny = ["GB"]
[[demo.partners]]
id = "alice"
name = "Alice"
[[demo.links]]
code = "demo"
program = "demo"
partner = "alice"
destination = "https://example.com/menu"
utm_source = "clickgate"
"#
    )
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `clickgate` process: `serve`, `edge` or `core`, logging to a file.
pub struct Node {
    pub child: Child,
    /// Everything after `--config C --data-dir D`.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub config: PathBuf,
    pub data: PathBuf,
    pub log_path: PathBuf,
    pub admin: SocketAddr,
    tls: bool,
}

impl Node {
    /// Starts the binary and waits until `/readyz` on `admin` answers 200 (or, with TLS, until
    /// the log says it is serving).
    pub fn start(config: &Path, data: &Path, args: &[String], env: &[(&str, &str)], log_path: &Path, admin: SocketAddr) -> Node {
        let tls = std::fs::read_to_string(config).unwrap_or_default().contains("[tls]");
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut node = Node {
            child: Command::new("true").spawn().unwrap(),
            args: args.to_vec(),
            env,
            config: config.to_path_buf(),
            data: data.to_path_buf(),
            log_path: log_path.to_path_buf(),
            admin,
            tls,
        };
        node.restart();
        node
    }

    /// Starts the process again with the same arguments (after `kill9` or `terminate`).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).unwrap();
        self.child = Command::new(BIN)
            .args(["--config", self.config.to_str().unwrap(), "--data-dir", self.data.to_str().unwrap()])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // With TLS on, every listener speaks TLS; the log line says when they are bound.
        loop {
            if self.tls && self.log().contains("is serving") {
                return;
            }
            if let Ok(r) = try_request(self.admin, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") {
                if r.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("clickgate {:?} exited with {status} before it was ready; log:\n{}", self.args, self.log());
            }
            assert!(Instant::now() < deadline, "clickgate {:?} did not become ready; log:\n{}", self.args, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "clickgate {:?} did not stop on SIGTERM", self.args);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The value of one metric series, 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let body = request(self.admin, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        body.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--name 127.0.0.1:port`.
pub fn listen_arg(name: &str, addr: SocketAddr) -> [String; 2] {
    [format!("--{name}"), addr.to_string()]
}

/// A free loopback address.
pub fn free_addr() -> SocketAddr {
    ([127, 0, 0, 1], free_port()).into()
}

/// `N` distinct free loopback addresses: all are held bound until each is chosen, so two calls
/// in a row cannot return the same port.
pub fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    let held: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap())
}

/// Where a server keeps conversions, commissions and the ledger.
pub enum Store {
    /// The embedded SQLite file in the data dir.
    Sqlite,
    /// A fresh schema in the local PostgreSQL (`CLICKGATE_DATABASE_URL`).
    Pg(clickgate::testing::PgSchema),
}

impl Store {
    /// A fresh PostgreSQL schema; fails the test, naming the server and how to start one, when
    /// none answers (the tests that call this are ignored unless asked for).
    pub fn pg() -> Store {
        Store::Pg(clickgate::testing::PgSchema::new("e2e"))
    }

    /// The environment that points the binary at this store.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Store::Sqlite => vec![],
            Store::Pg(schema) => vec![("CLICKGATE_DATABASE_URL", schema.url.clone())],
        }
    }
}

/// Runs each named test, a `fn(Store)`, on SQLite and on PostgreSQL: `<name>::sqlite` and
/// `<name>::postgres`. The PostgreSQL one is ignored unless asked for (`--include-ignored`),
/// and then needs the server. `on_both!(nats: ...)` is for tests that also start a
/// nats-server: both variants are ignored, each naming what it needs. (Not every test binary
/// that includes `common` uses it.)
#[allow(unused_macros)]
macro_rules! on_both {
    (nats: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                #[ignore = "needs nats-server on PATH; run with --include-ignored"]
                fn sqlite() {
                    super::$name(super::common::Store::Sqlite);
                }

                #[test]
                #[ignore = "needs nats-server on PATH and PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
                fn postgres() {
                    super::$name(super::common::Store::pg());
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(super::common::Store::Sqlite);
                }

                #[test]
                #[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
                fn postgres() {
                    super::$name(super::common::Store::pg());
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use on_both;

/// A running `clickgate serve`.
pub struct Server {
    pub node: Node,
    pub edge: SocketAddr,
    pub admin: SocketAddr,
    pub api: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: Store,
}

impl Server {
    /// Starts the binary with `config_text` and waits until it is ready.
    pub fn start(config_text: &str) -> Server {
        Server::start_on(config_text, Store::Sqlite)
    }

    /// Starts the binary with `config_text` on `store` and waits until it is ready.
    pub fn start_on(config_text: &str, store: Store) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("clickgate.toml");
        std::fs::write(&config, config_text).unwrap();
        let [edge, admin, api] = free_addrs();
        let mut args = vec!["serve".to_string()];
        args.extend(listen_arg("edge-listen", edge));
        args.extend(listen_arg("admin-listen", admin));
        args.extend(listen_arg("api-listen", api));
        let env = store.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let node = Node::start(&config, &dir.path().join("data"), &args, &env, &dir.path().join("serve.log"), admin);
        Server { node, edge, admin, api, dir, config, store }
    }

    /// Runs the binary's command line against this server's config, data dir and store.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let env = self.store.env();
        run_cli_env(&self.config, &self.data_dir(), args, "", &env)
    }

    /// Starts `serve` again on the same ports and data dir (after `kill9` or `terminate`).
    pub fn restart(&mut self) {
        self.node.restart();
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        self.node.kill9();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        self.node.log()
    }

    /// `GET path` from client `ip` (through X-Forwarded-For, loopback being trusted).
    pub fn get(&self, path: &str, ip: &str, ua: &str) -> String {
        edge_get(self.edge, path, ip, ua)
    }

    /// The value of one metric series, 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.node.metric(series)
    }

    /// Sends SIGTERM and waits for exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.node.terminate()
    }
}

/// The python of a pinned venv beside the build's profiles (`<target>/<name>`), installed first
/// by `script` (a tests/*/fetch.sh over tests/pyvenv.sh, told the venv by `env_var`). Its exit
/// codes 3 and 4 (no python, venv or pip here; no registry) go to `unavailable`, which fails the
/// test saying what it needs; any other failure fails it plainly.
#[allow(dead_code)]
pub fn pinned_venv_python(script: &str, env_var: &str, name: &str, unavailable: fn(&str) -> !) -> PathBuf {
    let root = Path::new(ROOT);
    let target = Path::new(BIN).parent().and_then(Path::parent).map_or_else(|| root.join("target"), Path::to_path_buf);
    let venv = target.join(name);
    let fetch = Command::new("bash")
        .arg(root.join(script))
        .env(env_var, &venv)
        .output()
        .unwrap_or_else(|e| unavailable(&format!("cannot run bash: {e}")));
    let err = String::from_utf8_lossy(&fetch.stderr);
    match fetch.status.code() {
        Some(0) => venv.join("bin/python"),
        Some(3) | Some(4) => unavailable(&format!("{script} could not install it:\n{err}")),
        code => panic!("{script} failed ({code:?}):\n{err}"),
    }
}

/// `GET path` with `headers`, answered as (head, body bytes): for answers that are not text.
#[allow(dead_code)]
pub fn get_bytes(addr: SocketAddr, path: &str, headers: &[&str]) -> (String, Vec<u8>) {
    let mut conn = TcpStream::connect(addr).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    (String::from_utf8_lossy(&out[..split]).to_string(), out[split + 4..].to_vec())
}

/// `GET path` on an edge from client `ip` (through X-Forwarded-For, loopback being trusted).
pub fn edge_get(edge: SocketAddr, path: &str, ip: &str, ua: &str) -> String {
    request(
        edge,
        &format!("GET {path} HTTP/1.1\r\nHost: go.example\r\nX-Forwarded-For: {ip}\r\nUser-Agent: {ua}\r\nConnection: close\r\n\r\n"),
    )
}

/// An HTTP answer, split.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One request to an HTTP/1.1 server; `headers` are full lines without CRLF.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> Answer {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    let out = request(addr, &raw);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}

/// Sends raw bytes and reads until the peer closes.
pub fn try_request(addr: SocketAddr, raw: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(raw.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub fn request(addr: SocketAddr, raw: &str) -> String {
    try_request(addr, raw).unwrap()
}

/// The value of a response header (case-insensitive name).
pub fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Runs the binary with args and stdin; returns (exit code, stdout, stderr).
pub fn run_cli(config: &Path, data_dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    run_cli_env(config, data_dir, args, stdin, &[])
}

/// `run_cli` with environment variables set.
pub fn run_cli_env(config: &Path, data_dir: &Path, args: &[&str], stdin: &str, env: &[(&str, String)]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}
