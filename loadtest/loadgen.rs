//! clickgate-loadgen: the load generator and the reference consumer behind `loadtest/core.sh`.
//!
//! It talks to NATS JetStream the way cluster mode does: a message is a batch of click events
//! in the edge's format (`cluster::batch`: up to `--batch-len` events, default
//! `cluster.publish_batch_len_max`), its `Nats-Msg-Id` built by `batch::message_id` from a fixed
//! spool id and the batch's byte span in the event set, as the edge builds it from its spool;
//! the reference consumer pulls and acks as the core's consumer does.
//!
//! - `clicks`: builds N distinct, realistic click events in memory first (ids minted with the
//!   config's click-id key, for its demo links), then publishes them in batches, pipelined, as
//!   fast as the broker takes them. `--save FILE` keeps the encoded set for `replay`.
//! - `replay`: publishes a saved set again, unchanged (same batches, same message ids): the
//!   duplicate check.
//! - `null-consume`: the reference. A durable pull consumer set up like the core's, with the
//!   core's fetch size (`--config`'s `[cluster]`, else the default), that counts the events of
//!   each message without decoding them, acks every message and writes nothing: how fast the
//!   broker hands out a backlog on this machine, the ceiling of any core.
//! - `create-stream`: a stream exactly as the core creates it (`cluster::stream_config`), for
//!   the reference (the core creates its own).
//! - `stream-info`: a stream's messages, last sequence and consumers, optionally waiting until
//!   it and a durable consumer exist.
//! - `conversions`: posts N conversions to the core's API at full speed over C keep-alive
//!   connections, each with the click id of an ingested valid click (`--events`) or a coupon,
//!   and reports acknowledged conversions/s (`loadgen/conversions.rs`).
//! - `sqlite-reference`: plain SQLite inserting one row per conversion in groups with fsync,
//!   the reference printed beside the core's conversions/s.
//! - `cluster-drive`, `click-log`, `consumers`: the multi-node fault test's clicks and
//!   conversions, and its checks of the click logs and the consumers (`loadgen/cluster.rs`,
//!   behind `loadtest/cluster.sh`).
//!
//! Results go to stdout as one `key=value ...` line; progress and errors to stderr.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _};
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::context::{ContextBuilder, PublishAckFuture};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{Context, Message};
use async_nats::Subject;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::TryStreamExt;

use clickgate::cluster::batch::{self, BATCH_MAGIC, BATCH_VERSION};
use clickgate::cluster::{consume::consumer_config, stream_config};
use clickgate::config::{Cluster, Config};
use clickgate::edge::links::LinkTable;
use clickgate::events::{ClickEvent, SUB_IDS_MAX};
use clickgate::model::Channel;
use clickgate::model::{ClickSigner, VisitorId, CLICK_ID_CHARS};
use clickgate::model::{Reason, Reasons, Verdict};
use clickgate::storage::sqlite::SqliteCatalog as Store;

#[path = "loadgen/cluster.rs"]
mod cluster;
#[path = "loadgen/conversions.rs"]
mod conversions;
#[path = "loadgen/rate.rs"]
mod rate;

/// Messages in flight at once: enough to keep the broker busy, bounded so memory is too.
const PUBLISH_WINDOW: usize = 256;
/// The spool id in the message ids of published sets: "loadgen", as the edge would put its own.
const LOADGEN_SPOOL_ID: u64 = 0x006c_6f61_6467_656e;
/// How long a JetStream request or publish ack may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A consumer that saw nothing for this long while expecting more gives up.
const IDLE_MAX: Duration = Duration::from_secs(15);
/// The simulated clicks span this much time, ending now.
const CLICK_SPAN_MS: u64 = 3_600_000;
/// First bytes of a saved event set.
const SET_MAGIC: &[u8] = b"clickgate-loadgen events v1\n";

#[derive(Parser)]
#[command(name = "clickgate-loadgen", about = "Load generator and reference consumer for loadtest/core.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build N click events, then publish them pipelined to JetStream.
    Clicks {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        count: usize,
        /// Returning visitors in the pool (60% of clicks come from it, 40% are new visitors).
        #[arg(long, default_value_t = 500_000)]
        visitors: usize,
        /// Seeds everything but the click ids' random part (minted from the OS).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The config whose click-id key and demo links the events use (the core's).
        #[arg(long, default_value = "config/loadtest-core.toml")]
        config: PathBuf,
        /// Also write the encoded events here, for `replay`.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Events per message.
        #[arg(long, default_value_t = Cluster::default().publish_batch_len_max)]
        batch_len: usize,
    },
    /// Publish a set saved by `clicks --save` again, unchanged.
    Replay {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        file: PathBuf,
        /// Events per message; the same as the first publish, or the message ids differ.
        #[arg(long, default_value_t = Cluster::default().publish_batch_len_max)]
        batch_len: usize,
    },
    /// The reference: a durable pull consumer that acks without writing; stops after N.
    NullConsume {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        stream: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value = "loadgen-null")]
        durable: String,
        /// The core's config: its `[cluster]` settings (fetch size, ack wait) are used, with the
        /// stream, subject and durable above. Without it, `Cluster::default()`'s.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create a stream as the core would (file storage, interest retention, duplicate window),
    /// with the durable consumers that will read it (`null-consume`'s, or every core's): under
    /// interest retention a message published while no consumer exists is not kept.
    CreateStream {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        stream: String,
        #[arg(long)]
        subject: String,
        #[arg(long, default_value_t = Cluster::default().duplicate_window_ms)]
        duplicate_window_ms: u64,
        /// A durable consumer to create; repeat it for several (one per core).
        #[arg(long, default_value = "loadgen-null")]
        durable: Vec<String>,
        /// Copies of the stream (and its consumers) across a NATS cluster's servers.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Keep trying this long while the broker is not ready (a cluster electing its leader).
        #[arg(long, default_value_t = 0)]
        wait_s: u64,
        /// The core's config, whose `[cluster]` settings the consumer takes, as `null-consume`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Clicks through every edge and conversions through every core, at fixed rates, for a
    /// while; conversions are retried on the next core until acknowledged. Writes clicks.txt and
    /// conversions.txt to --out.
    ClusterDrive {
        /// An edge's redirect listener, host:port; repeat it for each edge.
        #[arg(long, required = true)]
        edge: Vec<std::net::SocketAddr>,
        /// A core's API listener, host:port; repeat it for each core.
        #[arg(long, required = true)]
        api: Vec<std::net::SocketAddr>,
        #[arg(long)]
        duration_s: u64,
        #[arg(long, default_value_t = 200.0)]
        click_rate: f64,
        #[arg(long, default_value_t = 16)]
        click_connections: usize,
        #[arg(long, default_value_t = 20.0)]
        conversion_rate: f64,
        #[arg(long, default_value_t = 8)]
        conversion_workers: usize,
        /// Seconds one conversion may stay unacknowledged over all its attempts.
        #[arg(long, default_value_t = 120)]
        conversion_deadline_s: u64,
        /// The config every node reads: its demo links, programs, coupons and admin key.
        #[arg(long)]
        config: PathBuf,
        /// Makes order ids and idempotency keys unique to this run.
        #[arg(long)]
        run_id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare a core's click log with the click ids in a file: found, missing, repeated.
    ClickLog {
        /// The core's click log directory (`<data dir>/clicks`).
        #[arg(long)]
        dir: PathBuf,
        /// Click ids, one a line.
        #[arg(long)]
        cgids: PathBuf,
    },
    /// Wait until durable consumers have nothing pending and nothing unacked.
    Consumers {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        stream: String,
        #[arg(long, required = true)]
        durable: Vec<String>,
        #[arg(long, default_value_t = 120)]
        wait_s: u64,
    },
    /// Post N conversions to the API over C keep-alive connections; report acknowledged/s.
    Conversions {
        /// The core's API, `http://host:port`.
        #[arg(long)]
        api_url: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 512)]
        connections: usize,
        /// An event set saved by `clicks --save` whose clicks the core has ingested: each
        /// conversion carries the click id of one of its valid clicks.
        #[arg(long)]
        events: Option<PathBuf>,
        /// Without --events: a coupon code of --program that attributes every conversion.
        #[arg(long, requires = "program")]
        coupon: Option<String>,
        #[arg(long)]
        program: Option<String>,
        /// The core's config: its admin key (`api.admin_key`) and its programs' currencies.
        #[arg(long, default_value = "config/loadtest-core.toml")]
        config: PathBuf,
        /// The bearer key; default the config's `api.admin_key`.
        #[arg(long)]
        admin_key: Option<String>,
        /// Makes the order ids unique to this run; default the current Unix time in ms.
        #[arg(long)]
        run_id: Option<String>,
        /// Send an `Idempotency-Key` with every conversion, as a careful integration would.
        #[arg(long)]
        idempotency_keys: bool,
    },
    /// The edge's click mix (loadtest/mix.lua's, ported) at a constant rate over C keep-alive
    /// connections, open-loop: latency runs from each request's scheduled send.
    EdgeRate {
        /// The server's address, host:port.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// Requests per second offered.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds measured, after the warm-up.
        #[arg(long, default_value_t = 10)]
        duration_s: u64,
        /// Seconds at the same rate before measuring.
        #[arg(long, default_value_t = 2)]
        warmup_s: u64,
        #[arg(long, default_value_t = 42)]
        pool_seed: u64,
        #[arg(long, default_value_t = 1)]
        request_seed: u64,
        #[arg(long)]
        browsers: PathBuf,
        #[arg(long)]
        bots: PathBuf,
    },
    /// Plain SQLite: N rows, G per commit, WAL and synchronous=FULL, in a fresh file in --dir.
    SqliteReference {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        rows: usize,
        #[arg(long)]
        rows_per_commit: usize,
    },
    /// Print a stream's state; with --wait-s, wait until it (and --consumer) exist.
    StreamInfo {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        stream: String,
        /// A durable consumer that must exist too.
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long, default_value_t = 0)]
        wait_s: u64,
    },
}

fn main() -> ExitCode {
    // Seeded demo partners are sealed under the process's data key, which a server's start
    // loads; this process holds a fixed one.
    clickgate::privacy::keys::install(clickgate::privacy::DataKey::from_bytes(&[0x5a; 32])).expect("one data key");
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clickgate-loadgen: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clickgate-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Clicks { nats_url, subject, count, visitors, seed, config, save, batch_len } => {
            ensure!(count > 0, "--count must be at least 1");
            ensure!(batch_len > 0, "--batch-len must be at least 1");
            let config = Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let started = Instant::now();
            let set = EventSet::generate(&config, count, visitors.max(1), seed)?;
            eprintln!(
                "built {} events ({} bytes on average) in {:.2} s",
                set.len(),
                set.payload_bytes() / set.len(),
                started.elapsed().as_secs_f64()
            );
            if let Some(path) = save {
                std::fs::write(&path, &set.data).with_context(|| format!("writing {}", path.display()))?;
            }
            publish(&nats_url, &subject, &set, batch_len).await
        }
        Command::Replay { nats_url, subject, file, batch_len } => {
            ensure!(batch_len > 0, "--batch-len must be at least 1");
            let set = EventSet::load(&file)?;
            publish(&nats_url, &subject, &set, batch_len).await
        }
        Command::NullConsume { nats_url, stream, subject, count, durable, config } => {
            ensure!(count > 0, "--count must be at least 1");
            let base = match config {
                Some(path) => Config::load(&path).with_context(|| format!("loading {}", path.display()))?.cluster,
                None => Cluster::default(),
            };
            null_consume(&nats_url, Cluster { stream, subject, durable, ..base }, count).await
        }
        Command::CreateStream { nats_url, stream, subject, duplicate_window_ms, durable, replicas, wait_s, config } => {
            ensure!((1..=5).contains(&replicas), "--replicas must be in 1..=5");
            let base = match config {
                Some(path) => Config::load(&path).with_context(|| format!("loading {}", path.display()))?.cluster,
                None => Cluster::default(),
            };
            let cluster = Cluster { stream, subject, duplicate_window_ms, ..base };
            let deadline = Instant::now() + Duration::from_secs(wait_s);
            loop {
                match create_stream(&nats_url, &cluster, &durable, replicas).await {
                    Ok(()) => break,
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("creating stream {} failed, trying again: {e:#}", cluster.stream);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            println!("stream={} subject={} durable={} replicas={replicas}", cluster.stream, cluster.subject, durable.join(","));
            Ok(())
        }
        Command::ClusterDrive {
            edge,
            api,
            duration_s,
            click_rate,
            click_connections,
            conversion_rate,
            conversion_workers,
            conversion_deadline_s,
            config,
            run_id,
            out,
        } => {
            let config = Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let admin_key = config.api.admin_key.clone();
            ensure!(!admin_key.is_empty(), "the config has no api.admin_key to post conversions with");
            cluster::drive(cluster::Drive {
                edges: edge,
                apis: api,
                duration: Duration::from_secs(duration_s),
                click_rate,
                click_connections,
                conversion_rate,
                conversion_workers,
                conversion_deadline: Duration::from_secs(conversion_deadline_s),
                config,
                admin_key,
                run_id,
                out,
            })
            .await
        }
        Command::ClickLog { dir, cgids } => cluster::click_log(&dir, &cgids),
        Command::Consumers { nats_url, stream, durable, wait_s } => {
            let js = jetstream(&nats_url).await?;
            cluster::consumers(&js, &stream, &durable, Duration::from_secs(wait_s)).await
        }
        Command::EdgeRate { addr, rate, connections, duration_s, warmup_s, pool_seed, request_seed, browsers, bots } => {
            rate::run(&rate::Options {
                addr,
                rate,
                connections,
                duration: Duration::from_secs(duration_s),
                warmup: Duration::from_secs(warmup_s),
                pool_seed,
                request_seed,
                browsers: &browsers,
                bots: &bots,
            })
        }
        Command::StreamInfo { nats_url, stream, consumer, wait_s } => stream_info(&nats_url, &stream, consumer.as_deref(), wait_s).await,
        Command::Conversions { api_url, count, connections, events, coupon, program, config, admin_key, run_id, idempotency_keys } => {
            let config = Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let admin_key = admin_key.unwrap_or_else(|| config.api.admin_key.clone());
            ensure!(!admin_key.is_empty(), "no admin key: give --admin-key or set api.admin_key in the config");
            let run_id = run_id.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()).to_string());
            conversions::run(conversions::Run {
                api_url: &api_url,
                admin_key: &admin_key,
                count,
                connections,
                events: events.as_deref(),
                coupon: coupon.as_deref().zip(program.as_deref()),
                config: &config,
                run_id: &run_id,
                idempotency_keys,
            })
            .await
        }
        Command::SqliteReference { dir, rows, rows_per_commit } => conversions::sqlite_reference(&dir, rows, rows_per_commit),
    }
}

/// The stream as `cluster::stream_config` makes it, with `replicas` copies, and a durable
/// consumer for each name in `durables` (consumers take the stream's replicas).
async fn create_stream(nats_url: &str, cluster: &Cluster, durables: &[String], replicas: usize) -> anyhow::Result<()> {
    let js = jetstream(nats_url).await?;
    let config = async_nats::jetstream::stream::Config { num_replicas: replicas, ..stream_config(cluster) };
    let created = js.get_or_create_stream(config).await.with_context(|| format!("creating stream {} on {nats_url}", cluster.stream))?;
    for durable in durables {
        let c = Cluster { durable: durable.clone(), ..cluster.clone() };
        created
            .get_or_create_consumer(durable, consumer_config(&c))
            .await
            .with_context(|| format!("creating durable consumer {durable} on {}", cluster.stream))?;
    }
    Ok(())
}

/// A JetStream context on `nats_url`: one server, or several separated by commas (a cluster).
async fn jetstream(nats_url: &str) -> anyhow::Result<Context> {
    let servers: Vec<&str> = nats_url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let client = async_nats::ConnectOptions::new()
        .name("clickgate-loadgen")
        .connection_timeout(REQUEST_TIMEOUT)
        .connect(servers.as_slice())
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    Ok(ContextBuilder::new().timeout(REQUEST_TIMEOUT).max_ack_inflight(2 * PUBLISH_WINDOW).build(client))
}

/// utime + stime of this process in clock ticks, to report CPU per event.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

// ---- the events --------------------------------------------------------------------------------

/// Encoded events in one buffer, laid out as the saved file: the magic, then per event the
/// 47-character click id, the payload's length (u32 little-endian) and the payload.
struct EventSet {
    data: Bytes,
    /// Offset of each event's click id; its payload follows 4 bytes after the id.
    frames: Vec<(usize, u32)>,
}

impl EventSet {
    fn generate(config: &Config, count: usize, visitors: usize, seed: u64) -> anyhow::Result<EventSet> {
        ensure!(
            !config.click_id.keys.is_empty(),
            "the config has no [[click_id.keys]]: the core could not verify the click ids minted here"
        );
        let keys: Vec<(u8, Vec<u8>)> = config.click_id.keys.iter().map(|k| (k.id, k.secret.clone().into_bytes())).collect();
        let signer = ClickSigner::new(&keys);
        let links = demo_links(config)?;
        // Zipf (s = 1) over the links in config order: the first is the most popular.
        let weights: Vec<f64> = (0..links.len()).map(|i| 1.0 / (i + 1) as f64).collect();
        let total: f64 = weights.iter().sum();
        let mut cumulative = Vec::with_capacity(links.len());
        let mut acc = 0.0;
        for w in &weights {
            acc += w / total;
            cumulative.push(acc);
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let returning: Vec<VisitorId> = (0..visitors).map(|_| VisitorId(rng.u128(..).to_le_bytes())).collect();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_millis() as u64;
        let first_ms = now_ms - CLICK_SPAN_MS;

        let mut data = Vec::with_capacity(SET_MAGIC.len() + count * 320);
        data.extend_from_slice(SET_MAGIC);
        let mut frames = Vec::with_capacity(count);
        let mut payload = Vec::with_capacity(512);
        let mut id_text = [0u8; CLICK_ID_CHARS];
        for i in 0..count {
            let ts_ms = first_ms + (i as u64 * CLICK_SPAN_MS) / count as u64;
            let u = rng.f64();
            let link = &links[cumulative.partition_point(|c| *c < u).min(links.len() - 1)];
            let ev = click(&mut rng, &signer, link, &returning, ts_ms);
            payload.clear();
            ev.encode_into(&mut payload).context("encoding a click event")?;
            let len = u32::try_from(payload.len()).context("an encoded event is over 4 GiB")?;
            frames.push((data.len(), len));
            data.extend_from_slice(ev.click_id.encode(&mut id_text).as_bytes());
            data.extend_from_slice(&len.to_le_bytes());
            data.extend_from_slice(&payload);
        }
        Ok(EventSet { data: Bytes::from(data), frames })
    }

    fn load(path: &Path) -> anyhow::Result<EventSet> {
        let data = Bytes::from(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
        ensure!(data.starts_with(SET_MAGIC), "{} is not an event set saved by `clicks --save`", path.display());
        let mut frames = Vec::new();
        let mut at = SET_MAGIC.len();
        while at < data.len() {
            let Some(header) = data.get(at..at + CLICK_ID_CHARS + 4) else { bail!("{}: truncated at byte {at}", path.display()) };
            ensure!(std::str::from_utf8(&header[..CLICK_ID_CHARS]).is_ok(), "{}: bad click id at byte {at}", path.display());
            let len = u32::from_le_bytes(header[CLICK_ID_CHARS..].try_into().expect("4 bytes"));
            let end = at + CLICK_ID_CHARS + 4 + len as usize;
            ensure!(end <= data.len(), "{}: truncated event at byte {at}", path.display());
            frames.push((at, len));
            at = end;
        }
        ensure!(!frames.is_empty(), "{} holds no events", path.display());
        Ok(EventSet { data, frames })
    }

    fn len(&self) -> usize {
        self.frames.len()
    }

    fn payload_bytes(&self) -> usize {
        self.frames.iter().map(|(_, len)| *len as usize).sum()
    }

    fn id(&self, i: usize) -> &str {
        let at = self.frames[i].0;
        // Checked to be UTF-8 when built or loaded.
        std::str::from_utf8(&self.data[at..at + CLICK_ID_CHARS]).expect("click ids are ASCII")
    }

    fn payload(&self, i: usize) -> &[u8] {
        let (at, len) = self.frames[i];
        let start = at + CLICK_ID_CHARS + 4;
        &self.data[start..start + len as usize]
    }

    /// Events `range` as one message: the batch payload and its `Nats-Msg-Id`, whose span is
    /// the events' bytes in the set (fixed, so a replay repeats every id).
    fn message(&self, range: std::ops::Range<usize>) -> (Bytes, String) {
        let mut payload = Vec::with_capacity(2 + range.clone().map(|i| 4 + self.frames[i].1 as usize).sum::<usize>());
        payload.extend_from_slice(&[BATCH_MAGIC, BATCH_VERSION]);
        for i in range.clone() {
            payload.extend_from_slice(&self.frames[i].1.to_le_bytes());
            payload.extend_from_slice(self.payload(i));
        }
        let start = self.frames[range.start].0 as u64;
        let end = range.end.checked_sub(1).map_or(start, |last| {
            let (at, len) = self.frames[last];
            (at + CLICK_ID_CHARS + 4 + len as usize) as u64
        });
        let id = batch::message_id(LOADGEN_SPOOL_ID, start, end, &payload);
        (Bytes::from(payload), id)
    }
}

/// What a click event takes from its link.
struct Link {
    link_id: u32,
    partner_id: u32,
    code: Arc<str>,
    program: Arc<str>,
    partner: Arc<str>,
    channel: Channel,
}

/// The config's demo links as the edge sees them: seeded into a throw-away store so the link
/// and partner row ids in the click ids are the ones the core's store gives them.
fn demo_links(config: &Config) -> anyhow::Result<Vec<Link>> {
    ensure!(!config.demo.links.is_empty(), "the config has no [[demo.links]] to click on");
    let dir = std::env::temp_dir().join(format!("clickgate-loadgen-store-{}", std::process::id()));
    // A leftover of an earlier process with this pid would keep its seeding: start empty.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let table = (|| -> anyhow::Result<LinkTable> {
        let store = Store::open(&dir).with_context(|| format!("opening a scratch store in {}", dir.display()))?;
        clickgate::app::seed_demo(&store, &config.demo).context("seeding the scratch store from the config's demo section")?;
        Ok(clickgate::app::load_links(&store)?)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let table = table?;
    clickgate::app::demo_seed(&config.demo)?
        .links
        .iter()
        .map(|l| {
            let e = table.get(&l.code).with_context(|| format!("demo link {} did not make it into the link table", l.code))?;
            Ok(Link {
                link_id: e.link_id,
                partner_id: e.partner_id,
                code: e.code.clone(),
                program: e.program.clone(),
                partner: e.partner.clone(),
                channel: e.channel,
            })
        })
        .collect()
}

/// Countries, most frequent first, with their share in per mille.
const COUNTRIES: [(&[u8; 2], u32); 8] =
    [(b"US", 380), (b"DE", 140), (b"GB", 120), (b"FR", 90), (b"IN", 80), (b"BR", 70), (b"JP", 60), (b"CA", 60)];
/// Eyeball ISPs' ASNs, and two cloud ASNs for the clicks flagged `datacenter_asn`.
const ISP_ASNS: [u32; 6] = [7922, 3320, 2856, 3215, 9829, 701];
const CLOUD_ASNS: [u32; 2] = [16509, 14618];

/// One click as the edge would record it: about 93% valid, the rest flagged, blocked or rate
/// limited with the reason the edge would give.
fn click(rng: &mut fastrand::Rng, signer: &ClickSigner, link: &Link, returning: &[VisitorId], ts_ms: u64) -> ClickEvent {
    let mut reasons = Reasons::default();
    let mut asn = ISP_ASNS[rng.usize(..ISP_ASNS.len())];
    let verdict = match rng.u32(0..1000) {
        0..=24 => {
            reasons.insert(Reason::Duplicate);
            Verdict::Flagged
        }
        25..=44 => {
            reasons.insert(Reason::DatacenterAsn);
            asn = CLOUD_ASNS[rng.usize(..CLOUD_ASNS.len())];
            Verdict::Flagged
        }
        45..=59 => {
            reasons.insert(Reason::BotUa);
            Verdict::Flagged
        }
        60..=64 => {
            reasons.insert(Reason::LinkPreview);
            Verdict::Flagged
        }
        65..=67 => {
            reasons.insert(Reason::IpDenylisted);
            Verdict::Blocked
        }
        68..=69 => {
            reasons.insert(Reason::RateLimited);
            Verdict::RateLimited
        }
        _ => Verdict::Valid,
    };
    let (visitor_id, new_visitor) = if rng.u8(0..10) < 6 {
        // Squaring a uniform favours low indexes: some visitors come back often.
        let u = rng.f64();
        (returning[((u * u) * returning.len() as f64) as usize], false)
    } else {
        (VisitorId(rng.u128(..).to_le_bytes()), true)
    };
    let mut roll = rng.u32(0..1000);
    let country = COUNTRIES.iter().find(|(_, share)| {
        let hit = roll < *share;
        roll = roll.saturating_sub(*share);
        hit
    });
    let ip = if rng.u8(0..10) == 0 {
        IpAddr::V6(Ipv6Addr::from(rng.u128(..) & !((1u128 << 80) - 1) | (0x2000u128 << 112)))
    } else {
        IpAddr::V4(Ipv4Addr::from(rng.u32(..) & 0xffff_ff00))
    };
    let sub_ids = (rng.u8(0..3) == 0).then(|| {
        let mut s: [Option<Box<str>>; SUB_IDS_MAX] = Default::default();
        s[0] = Some(format!("cmp{}", rng.u16(0..500)).into());
        Box::new(s)
    });
    ClickEvent {
        click_id: signer.mint(ts_ms, link.link_id, link.partner_id),
        ts_ms,
        program: link.program.clone(),
        partner: link.partner.clone(),
        link: link.code.clone(),
        channel: link.channel,
        sub_ids,
        verdict,
        reasons,
        observed: Reasons::default(),
        visitor_id,
        new_visitor,
        country: country.map(|(cc, _)| **cc),
        asn,
        // A visitor keeps one browser.
        ua_hash: u64::from_le_bytes(visitor_id.0[..8].try_into().expect("8 bytes")) ^ 0x9e37_79b9_7f4a_7c15,
        ua: Some(AGENTS[usize::from(visitor_id.0[0]) % AGENTS.len()].into()),
        client_tag: Some(u64::from_le_bytes(visitor_id.0[8..].try_into().expect("8 bytes"))),
        ip: Some(ip),
        ip_hash: None,
    }
}

/// Agents as the edge logs them, so events are their real size.
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
];

// ---- publishing --------------------------------------------------------------------------------

/// What the stream said about the published messages, counted in events and in messages.
#[derive(Default)]
struct Acks {
    stored: usize,
    /// Dropped as repeats of a `Nats-Msg-Id` inside the stream's duplicate window.
    duplicates: usize,
    stored_messages: usize,
    duplicate_messages: usize,
    last_seq: u64,
}

/// A message in flight: its first event, its events, its ack.
type Pending = (usize, usize, PublishAckFuture);

impl Acks {
    async fn take(&mut self, (first, events, ack): Pending, subject: &Subject) -> anyhow::Result<()> {
        let ack = ack.await.with_context(|| format!("no publish ack for the message of events {first}.. on {subject}"))?;
        if ack.duplicate {
            self.duplicates += events;
            self.duplicate_messages += 1;
        } else {
            self.stored += events;
            self.stored_messages += 1;
        }
        self.last_seq = self.last_seq.max(ack.sequence);
        Ok(())
    }
}

/// Publishes every event in messages of `batch_len`, `PUBLISH_WINDOW` acks in flight, and
/// reports what the stream did.
async fn publish(nats_url: &str, subject: &str, set: &EventSet, batch_len: usize) -> anyhow::Result<()> {
    let js = jetstream(nats_url).await?;
    let subject = Subject::from(subject);
    let mut inflight: VecDeque<Pending> = VecDeque::with_capacity(PUBLISH_WINDOW);
    let mut acks = Acks::default();
    let (started, cpu0) = (Instant::now(), cpu_ticks());
    let mut messages = 0usize;
    for first in (0..set.len()).step_by(batch_len) {
        if inflight.len() == PUBLISH_WINDOW {
            acks.take(inflight.pop_front().expect("the window is full"), &subject).await?;
        }
        let range = first..(first + batch_len).min(set.len());
        let events = range.len();
        let (payload, id) = set.message(range);
        let message = PublishMessage::build().payload(payload).message_id(id);
        let ack = js.send_publish(subject.clone(), message).await.with_context(|| format!("publishing events {first}.. to {subject}"))?;
        inflight.push_back((first, events, ack));
        messages += 1;
    }
    while let Some(pending) = inflight.pop_front() {
        acks.take(pending, &subject).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "published={} stored={} duplicates={} messages={messages} stored_messages={} duplicate_messages={} last_seq={} seconds={seconds:.3} rate={:.0} cpu_ticks={} batch={batch_len}",
        set.len(),
        acks.stored,
        acks.duplicates,
        acks.stored_messages,
        acks.duplicate_messages,
        acks.last_seq,
        set.len() as f64 / seconds,
        cpu_ticks() - cpu0
    );
    Ok(())
}

// ---- consuming ---------------------------------------------------------------------------------

/// Drains `count` events through a durable pull consumer set up like the core's (the same
/// `consumer_config` and fetch size; no-wait fetches, as the core makes while a backlog waits),
/// counting each message's events without decoding them, acking each pull as the core does (all
/// but the last without a reply, the last with one) and writing nothing. The rate counts from the first batch's confirmed acks to the last's, the same span
/// `core.sh` measures on the core (first movement of `clickgate_cluster_consumed_total` to N).
async fn null_consume(nats_url: &str, cluster: Cluster, count: usize) -> anyhow::Result<()> {
    let js = jetstream(nats_url).await?;
    let stream = js.get_stream(&cluster.stream).await.with_context(|| format!("looking up stream {}", cluster.stream))?;
    let consumer: PullConsumer = stream
        .get_or_create_consumer(&cluster.durable, consumer_config(&cluster))
        .await
        .with_context(|| format!("creating durable consumer {} on {}", cluster.durable, cluster.stream))?;
    let batch_len_max = cluster.fetch_batch_len_max.max(1);
    let (mut consumed, mut first_batch, mut bytes, mut messages_total) = (0usize, 0usize, 0usize, 0usize);
    let mut first: Option<(Instant, u64)> = None;
    let mut idle_since = Instant::now();
    while consumed < count {
        let want = batch_len_max;
        let batch = consumer.fetch().max_messages(want).messages().await.context("pulling from the consumer")?;
        let messages: Vec<Message> = match tokio::time::timeout(REQUEST_TIMEOUT, batch.try_collect()).await {
            Ok(read) => read.map_err(|e| anyhow::anyhow!("reading a pull: {e}"))?,
            Err(_) => {
                let info = consumer.get_info().await.context("a pull did not end in time, and the consumer's state is unreadable")?;
                bail!(
                    "a no-wait pull of {want} messages did not end within {REQUEST_TIMEOUT:?} after {consumed} consumed; \
                     the consumer has {} unacked of max_ack_pending {} and {} waiting (nats-server does not end a pull \
                     that asks for more than max_ack_pending allows)",
                    info.num_ack_pending,
                    info.config.max_ack_pending,
                    info.num_pending
                );
            }
        };
        let Some((last, rest)) = messages.split_last() else {
            if idle_since.elapsed() > IDLE_MAX {
                bail!("stream {} ran dry after {consumed} of {count} messages", cluster.stream);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        for m in rest {
            m.ack().await.map_err(|e| anyhow::anyhow!("acking a message: {e}"))?;
        }
        last.double_ack().await.map_err(|e| anyhow::anyhow!("acking the last message of a batch: {e}"))?;
        let mut events = 0;
        for m in &messages {
            events +=
                batch::event_count(&m.payload).map_err(|e| anyhow::anyhow!("a message on {} is no click batch: {e}", cluster.stream))?;
        }
        consumed += events;
        messages_total += messages.len();
        bytes += messages.iter().map(|m| m.payload.len()).sum::<usize>();
        idle_since = Instant::now();
        if first.is_none() {
            first = Some((Instant::now(), cpu_ticks()));
            first_batch = events;
        }
    }
    let (t0, cpu0) = first.expect("at least one batch");
    let seconds = t0.elapsed().as_secs_f64();
    let timed = consumed - first_batch;
    let rate = if seconds > 0.0 { timed as f64 / seconds } else { 0.0 };
    println!(
        "consumed={consumed} messages={messages_total} timed={timed} seconds={seconds:.3} rate={rate:.0} cpu_ticks={} bytes={bytes} batch={batch_len_max}",
        cpu_ticks() - cpu0
    );
    Ok(())
}

/// Prints `messages=.. last_seq=.. consumers=..`; waits up to `wait_s` for the stream (and the
/// consumer) to exist.
async fn stream_info(nats_url: &str, name: &str, consumer: Option<&str>, wait_s: u64) -> anyhow::Result<()> {
    let js = jetstream(nats_url).await?;
    let deadline = Instant::now() + Duration::from_secs(wait_s);
    loop {
        let found = async {
            let mut stream = js.get_stream(name).await.with_context(|| format!("stream {name} not found"))?;
            if let Some(c) = consumer {
                stream.consumer_info(c).await.with_context(|| format!("durable consumer {c} not found on {name}"))?;
            }
            let state = stream.info().await.with_context(|| format!("reading stream {name}'s state"))?.state.clone();
            anyhow::Ok(state)
        }
        .await;
        match found {
            Ok(state) => {
                println!("messages={} last_seq={} consumers={}", state.messages, state.last_sequence, state.consumer_count);
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
