//! `clickgate serve`, `clickgate edge` and `clickgate core`: the long-running processes. Each
//! builds the async runtime the config asks for and hands over to `app`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::Setup;
use crate::app::{self, Overrides};
use crate::config::Config;

/// `serve`: edge, core and API in one process.
#[derive(Args)]
pub(super) struct ServeArgs {
    #[arg(long)]
    edge_listen: Option<SocketAddr>,
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    #[arg(long)]
    api_listen: Option<SocketAddr>,
}

/// `edge`: cluster mode's edge alone.
#[derive(Args)]
pub(super) struct EdgeArgs {
    #[arg(long)]
    edge_listen: Option<SocketAddr>,
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// The broker (overrides `cluster.nats_url`); several comma-separated for a cluster.
    #[arg(long)]
    nats_url: Option<String>,
}

/// `core`: cluster mode's core alone.
#[derive(Args)]
pub(super) struct CoreArgs {
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// The broker (overrides `cluster.nats_url`); several comma-separated for a cluster.
    #[arg(long)]
    nats_url: Option<String>,
}

/// Runs `serve` until it drains on SIGTERM.
pub(super) fn serve(args: ServeArgs, setup: Setup) -> anyhow::Result<ExitCode> {
    let ServeArgs { edge_listen, admin_listen, api_listen } = args;
    let rt = runtime(&setup.config)?;
    rt.block_on(app::serve(setup.config, setup.data_dir, Overrides { edge_listen, admin_listen, api_listen }))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `edge` until it drains on SIGTERM.
pub(super) fn edge(args: EdgeArgs, setup: Setup) -> anyhow::Result<ExitCode> {
    let EdgeArgs { edge_listen, admin_listen, nats_url } = args;
    let config = with_nats_url(setup.config, nats_url)?;
    let rt = runtime(&config)?;
    rt.block_on(app::edge(config, setup.data_dir, Overrides { edge_listen, admin_listen, api_listen: None }))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `core` until it drains on SIGTERM.
pub(super) fn core(args: CoreArgs, setup: Setup) -> anyhow::Result<ExitCode> {
    let CoreArgs { api_listen, admin_listen, nats_url } = args;
    let config = with_nats_url(setup.config, nats_url)?;
    let rt = runtime(&config)?;
    rt.block_on(app::core(config, setup.data_dir, Overrides { edge_listen: None, admin_listen, api_listen }))?;
    Ok(ExitCode::SUCCESS)
}

/// The async runtime `runtime.worker_threads` asks for.
fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    // One worker needs no work stealing: the current-thread scheduler is cheaper per task.
    let mut rt = match config.runtime.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 0 {
                b.worker_threads(n);
            }
            b
        }
    };
    rt.enable_all().build().context("starting the async runtime")
}

/// The config with `--nats-url` in place of `cluster.nats_url`, checked as the file's would be.
fn with_nats_url(mut config: Config, nats_url: Option<String>) -> anyhow::Result<Config> {
    if let Some(url) = nats_url {
        config.cluster.nats_url = url;
        config.validate().context("--nats-url")?;
    }
    Ok(config)
}
