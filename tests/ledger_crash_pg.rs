//! Crash test of two `clickgate core` processes writing one PostgreSQL database: conversions
//! stream at full speed over both cores' APIs, as a load balancer would spread them, while one
//! core at a time (alternately) is killed with SIGKILL at a random moment and restarted on its
//! data dir. A request cut by a kill, or sent to the core that is down, is retried with the
//! same Idempotency-Key on the other core, so idempotency must hold across cores as well as
//! across restarts. Three requests in a hundred also go to both cores at once, as a load
//! balancer's retry after a timeout does: the two copies race through both cores' writers and
//! must come back as one write, one answer and at least one replay. Each core has its own data
//! dir and its own JetStream durable on one nats-server; both write one fresh schema.
//!
//! Afterwards, queried straight from the schema: every conversion the API acknowledged is
//! stored and accrued exactly once, with the commissions its answer named, each reserved by
//! exactly one transfer; every transfer cause is in the ledger once and matches its
//! commission's events; every acknowledged refund is applied once; debits equal credits; and
//! `clickgate ledger verify` passes on the schema. (Payouts settled by hand are the embedded
//! test's part: here a core is always up, and a refund may meet a payout in transit.)
//!
//! Each kill comes 100-600 ms (seeded) after the core killed last answered again, the killed
//! core stays down 0-300 ms, so every kill lands with requests and grouped commits of both
//! cores in flight, and both cores' approval sweeps run against each other throughout.
//!
//! `CLICKGATE_CRASH_KILLS` sets the number of kills (default 24; `loadtest/crash.sh --pg`
//! chooses), `CLICKGATE_CRASH_SEED` the seed of the kill moments, amounts and mix (printed
//! either way), `CLICKGATE_CRASH_CLIENTS` the number of concurrent clients (default 24). The
//! figures are written to stderr past the test harness's capture, so `cargo test` shows them.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::crash::{check_store, config_text, env_or, tail, Payouts};
use common::nats::Broker;
use common::stream::{Stream, StreamConfig};
use common::*;

const ADMIN_KEY: &str = "demo-admin-key";
/// The click-id key both cores share, as every node of a cluster does.
const CLICK_KEY: &str = "ledger-crash-pg-click-key";
/// After a restart, the restarted core must answer the stream again within this long.
const RESUME_MAX: Duration = Duration::from_secs(60);
/// Requests per thousand sent through both cores at once, as a load balancer that gave up
/// waiting on one core sends the request to the other while the first still runs it.
const HEDGE_PER_MILLE: u32 = 30;
/// The cores' names: each its own data dir, config and durable consumer.
const CORES: [&str; 2] = ["a", "b"];

/// Writes past the test harness's output capture, so the figures show in a plain `cargo test`.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "ledger_crash_pg: {line}");
}

/// A `clickgate core` and its API address.
struct Core {
    node: Node,
    api: SocketAddr,
}

/// Starts core `name` in `dir/<name>/`, on `broker` and the database `store_env` names.
fn start_core(dir: &Path, name: &str, broker: &Broker, store_env: &[(&str, String)]) -> Core {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("clickgate.toml");
    std::fs::write(&config, config_text(&format!("\n[cluster]\ndurable = \"crash-core-{name}\"\n"))).unwrap();
    let [api, admin] = free_addrs();
    let mut args = vec!["core".to_string(), "--nats-url".into(), broker.url()];
    args.extend(listen_arg("api-listen", api));
    args.extend(listen_arg("admin-listen", admin));
    let mut env = vec![("CLICKGATE_CLICK_KEY", CLICK_KEY)];
    env.extend(store_env.iter().map(|(k, v)| (*k, v.as_str())));
    let node = Node::start(&config, &home.join("data"), &args, &env, &home.join("core.log"), admin);
    Core { node, api }
}

/// The last lines of each core's log, for failure messages.
fn logs(cores: &[Core]) -> String {
    cores.iter().zip(CORES).map(|(c, name)| format!("core {name} log:\n{}", tail(&c.node.log()))).collect::<Vec<_>>().join("\n")
}

#[test]
#[ignore = "needs nats-server on PATH and PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn two_cores_on_postgres_count_acknowledged_conversions_once_through_sigkills() {
    let kills: u32 = env_or("CLICKGATE_CRASH_KILLS", 24);
    let seed: u64 = env_or("CLICKGATE_CRASH_SEED", fastrand::u64(..));
    let clients: usize = env_or("CLICKGATE_CRASH_CLIENTS", 24);
    // The harness has just written "test <name> ... " without a newline.
    let _ = writeln!(std::io::stderr().lock());
    say(&format!("seed {seed} (CLICKGATE_CRASH_SEED={seed} repeats the mix), {kills} kills, {clients} clients, 2 cores"));
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);

    let store = Store::pg();
    let Store::Pg(schema) = &store else { unreachable!("Store::pg is PostgreSQL") };
    // Every core and command-line run on one database shares its data key (docs/operations.md,
    // "Data at rest"); each would otherwise make one of its own in its data dir.
    let mut store_env = store.env();
    store_env.push(("CLICKGATE_DATA_KEY", "6c".repeat(32)));
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cores: Vec<Core> = CORES.iter().map(|name| start_core(dir.path(), name, &broker, &store_env)).collect();
    let stream = Stream::start(StreamConfig {
        apis: cores.iter().map(|c| c.api).collect(),
        admin_key: ADMIN_KEY.into(),
        clients,
        seed,
        program: "demo".into(),
        currency: "USD".into(),
        coupon: "BOB10".into(),
        occurred_ago_ms_max: 2 * 86_400_000 - 3_600_000,
        hedge_per_mille: HEDGE_PER_MILLE,
    });
    let (mut ready, mut resume) = (Vec::new(), Vec::new());
    // Requests the surviving core answered while the other was down.
    let mut answered_alone = 0;
    for k in 1..=kills {
        std::thread::sleep(Duration::from_millis(rng.u64(100..=600)));
        let (victim, other) = ((k % 2) as usize, ((k + 1) % 2) as usize);
        cores[victim].node.kill9();
        let before = stream.answered_by(other);
        std::thread::sleep(Duration::from_millis(rng.u64(0..=300)));
        let restarting = Instant::now();
        cores[victim].node.restart();
        ready.push(restarting.elapsed());
        answered_alone += stream.answered_by(other) - before;
        // The next kill, of the other core, waits until this one takes its share again.
        let answered = stream.answered_by(victim);
        let since = Instant::now();
        while stream.answered_by(victim) == answered {
            let waited = since.elapsed();
            assert!(
                waited < RESUME_MAX,
                "seed {seed}: core {} answered nothing within {waited:?} of restart {k}\n{}",
                CORES[victim],
                logs(&cores)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        resume.push(since.elapsed());
    }
    ready.sort();
    resume.sort();
    std::thread::sleep(Duration::from_millis(500));
    let by_core: Vec<u64> = (0..cores.len()).map(|i| stream.answered_by(i)).collect();
    let log = stream.finish(Duration::from_secs(180)).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", logs(&cores)));
    let streamed = started.elapsed();
    for (core, name) in cores.iter_mut().zip(CORES) {
        let status = core.node.terminate();
        assert!(status.success(), "seed {seed}: core {name} exited with {status} on SIGTERM; log:\n{}", tail(&core.node.log()));
    }

    let checked = Instant::now();
    let check = check_store(&mut schema.client(), &log, &Payouts::default());
    let core_a: (PathBuf, PathBuf) = (cores[0].node.config.clone(), cores[0].node.data.clone());
    let (code, out, err) = run_cli_env(&core_a.0, &core_a.1, &["ledger", "verify"], "", &store_env);
    let median = |d: &[Duration]| d.get(d.len() / 2).map_or(0, Duration::as_millis);
    let max = |d: &[Duration]| d.last().map_or(0, Duration::as_millis);
    let figures = [
        format!(
            "kills {kills} (alternating); conversions acknowledged {}; refunds acknowledged {}",
            log.conversions.len(),
            log.refunds_acked
        ),
        format!(
            "answered by core a {}, core b {}; by the surviving core while the other was down {answered_alone}",
            by_core[0], by_core[1]
        ),
        format!(
            "exact retries of acknowledged requests replayed: {}; requests sent to both cores at once, answered as one write: {}",
            log.replays_checked, log.hedged
        ),
        format!(
            "restart to ready: median {} ms, max {} ms; ready to first answer: median {} ms, max {} ms",
            median(&ready),
            max(&ready),
            median(&resume),
            max(&resume)
        ),
        format!(
            "requests failed by kills and retried {} ({} failed attempts), answered by the other core {}; \
             committed but unanswered {} (by the other core {}); 5xx answers {}",
            log.retried_requests,
            log.failed_attempts,
            log.answered_elsewhere,
            log.committed_unanswered,
            log.replayed_elsewhere,
            log.server_errors
        ),
        format!(
            "stored: conversions {}, commissions {} (approved {}), transfers {}",
            check.counts.conversions, check.counts.commissions, check.counts.approved, check.counts.transfers
        ),
        format!("verify: {}", out.lines().find(|l| l.starts_with("ledger")).unwrap_or("(no ledger line)")),
        format!(
            "elapsed {:.1} s (stream {:.1} s, checks {:.1} s)",
            started.elapsed().as_secs_f64(),
            streamed.as_secs_f64(),
            checked.elapsed().as_secs_f64()
        ),
    ];
    check.report(say, &figures, &log, seed, (code, &out, &err));
    assert!(out.contains("store: PostgreSQL\n") && out.contains("ledger clean:"), "seed {seed}: {out}");
    assert!(log.conversions.len() as u64 > u64::from(kills), "seed {seed}: too few conversions to have tested anything");
    assert!(by_core.iter().all(|&n| n > 0), "seed {seed}: a core answered nothing: {by_core:?}");
    assert!(kills == 0 || log.answered_elsewhere > 0, "seed {seed}: no request cut by a kill was answered by the other core");
    assert!(log.hedged > 0, "seed {seed}: no request was sent to both cores at once");
    say(&format!(
        "summary kills={kills} conversions_acked={} refunds_acked={} retried={} answered_elsewhere={} hedged={} transfers={} elapsed_s={:.1}",
        log.conversions.len(),
        log.refunds_acked,
        log.retried_requests,
        log.answered_elsewhere,
        log.hedged,
        check.counts.transfers,
        started.elapsed().as_secs_f64()
    ));
    // The cores stop before the schema they write is dropped.
    drop(cores);
    drop(store);
}
