//! `clickgate import`: posts a marketplace order report (CSV) to a running API and prints the
//! API's summary. The API does the work, so an import takes the same path as any other client's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::Config;

/// `import`'s arguments.
#[derive(Args)]
pub(super) struct ImportArgs {
    /// The program the rows belong to, unless a `program` column says otherwise.
    #[arg(long)]
    program: String,
    /// The API address (default: `listen.api` from the config).
    #[arg(long)]
    api: Option<SocketAddr>,
    /// The CSV file.
    file: PathBuf,
}

/// Runs the import; exits 1 when the API rejected any row.
pub(super) fn run(args: ImportArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let ImportArgs { program, api, file } = args;
    let csv = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let key = std::env::var("CLICKGATE_ADMIN_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .or_else(|| Some(config.api.admin_key.clone()).filter(|k| !k.is_empty()))
        .context("set CLICKGATE_ADMIN_KEY to the API's admin key")?;
    let api = api.unwrap_or(config.listen.api);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = rt.block_on(crate::api::import_csv_via_api(api, &key, &program, csv))?;
    println!("{body}");
    if status != 200 {
        anyhow::bail!("the API answered {status}");
    }
    let summary: crate::api::ImportSummary = serde_json::from_str(&body).context("reading the API's summary")?;
    Ok(if summary.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
