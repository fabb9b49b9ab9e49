//! `hms-host data export|import`: a service's private store as JSON lines.

use super::{HostArgs, client};
use crate::outln;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Print every record of SERVICE's store, one JSON object per line.
    Export {
        service: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Load records (JSON lines, as `export` writes them) into SERVICE's store.
    Import { service: String, file: PathBuf },
}

pub async fn data(command: DataCommand, host: &HostArgs) -> anyhow::Result<()> {
    match command {
        DataCommand::Export { service, output } => {
            let lines = client(host, true)?.export_data(&service).await?;
            match output {
                Some(file) => std::fs::write(&file, &lines)
                    .with_context(|| format!("{}: cannot write", file.display()))?,
                None => super::output::raw(&lines)?,
            }
        }
        DataCommand::Import { service, file } => {
            let lines =
                std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            let done = client(host, true)?
                .import_data(&service, lines.into())
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            outln!("imported {} records into {service}", done.imported)?;
        }
    }
    Ok(())
}
