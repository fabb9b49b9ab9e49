//! The `hms-host` command line: `run` starts a host ([`run`]); every other
//! command is a client of a running host's Core API through the typed
//! [`client`], one file per command group. The binary only dispatches.
//!
//! Exit codes: 0 success; 1 the operation failed (the host refused it, a
//! file could not be read, the host could not start); 2 the command line is
//! invalid; 3 the host could not be reached. Output into a closed pipe ends
//! the command quietly with 0.

mod audit;
pub mod client;
mod cluster;
mod data;
mod keys;
mod logs;
mod new;
pub mod output;
mod run;
mod services;

use crate::core::auth::Auth;
use anyhow::Context;
use clap::{Parser, Subcommand};
use client::{Client, ClientError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The operation failed (the host refused it, a file is unreadable, ...).
const EXIT_FAILED: u8 = 1;
/// The host could not be reached.
const EXIT_UNREACHABLE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "hms-host",
    version,
    about = "Runs microservices as sandboxed WebAssembly components with a native Core",
    after_help = "Exit codes: 0 success; 1 the operation failed (refused by the host, unreadable file, start-up failure); 2 invalid command line; 3 the host could not be reached. Output into a closed pipe ends quietly with 0."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve components until SIGINT/SIGTERM.
    Run(Box<run::RunArgs>),
    /// Manage API keys (admin).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Exchange an API key for a token.
    Token {
        /// The API key printed by `keys create`.
        api_key: String,
    },
    /// List registered services.
    Services {
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read the audit log (admin).
    Logs(logs::LogsArgs),
    /// Export the audit log with its signed checkpoints, or verify such an
    /// export offline (or a running host's log).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Upload a new version of a service to the running host and swap it in
    /// (admin). A version that fails validation is refused; the old keeps serving.
    Deploy {
        /// The service name the component declares.
        service: String,
        /// The component file.
        file: PathBuf,
        #[command(flatten)]
        wait: services::WaitArgs,
    },
    /// List the versions of a service the running host has deployed.
    Versions {
        service: String,
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A deployed service's limits, requests in flight and the count of every
    /// limit it hit (admin).
    Stats {
        service: String,
        /// Print the stats as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A service's private store (admin): export it as JSON lines, or import
    /// JSON lines into it (all or nothing; existing keys are replaced).
    #[command(subcommand)]
    Data(data::DataCommand),
    /// The hosts of the cluster (admin).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Limit a service to some hosts of the cluster, e.g. `place
    /// identity-service h2,h3`; the other hosts stop serving it within a
    /// heartbeat and their calls to it cross to these (admin).
    Place(cluster::PlaceArgs),
    /// Write a new service's skeleton into components/NAME of this checkout
    /// (Rust, Python or JavaScript): it builds with one command and comes
    /// with a passing test.
    New(new::NewArgs),
    /// Switch a service back to an earlier version (admin).
    Rollback {
        service: String,
        /// Digest (or unique prefix) to switch to; default: the previous version.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        wait: services::WaitArgs,
    },
}

/// Where the host is and where its data lives (global flags).
#[derive(clap::Args)]
pub struct HostArgs {
    /// Base URL of the running host (client commands).
    #[arg(
        long,
        global = true,
        env = "HMS_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Data directory: keys, audit log and compile cache for `run`; where
    /// client commands find the admin credential.
    #[arg(long, global = true, env = "HMS_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HMS_LOG")
                .unwrap_or_else(|_| "hms_host=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk) is
        // dropped; tracing-subscriber would otherwise report it with an
        // `eprintln!`, which panics there and would take down the thread
        // that logged (the audit writer, retrying its commits).
        .log_internal_errors(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting tokio: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(execute(cli.command, cli.host)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let unreachable = e
                .chain()
                .any(|c| matches!(c.downcast_ref(), Some(ClientError::Connect { .. })));
            ExitCode::from(if unreachable {
                EXIT_UNREACHABLE
            } else {
                EXIT_FAILED
            })
        }
    }
}

async fn execute(command: Command, host: HostArgs) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::run(*args, host.data_dir).await,
        Command::Keys { command } => keys::keys(command, &host).await,
        Command::Token { api_key } => keys::token(&api_key, &host).await,
        Command::Services { json } => services::services(&host, json).await,
        Command::Logs(args) => logs::logs(args, &host).await,
        Command::Audit(command) => audit::audit(command, &host).await,
        Command::Deploy {
            service,
            file,
            wait,
        } => services::deploy(&host, &service, &file, &wait).await,
        Command::Versions { service, json } => services::versions(&host, &service, json).await,
        Command::Stats { service, json } => services::stats(&host, &service, json).await,
        Command::Data(command) => data::data(command, &host).await,
        Command::Cluster(command) => cluster::cluster(command, &host).await,
        Command::Place(args) => cluster::place(args, &host).await,
        Command::New(args) => new::new(args),
        Command::Rollback { service, to, wait } => {
            services::rollback(&host, &service, to.as_deref(), &wait).await
        }
    }
}

pub(crate) fn client(host: &HostArgs, admin: bool) -> anyhow::Result<Client> {
    let client = Client::new(&host.url);
    if !admin {
        return Ok(client);
    }
    Ok(client.with_bearer(admin_token(&host.data_dir)?))
}

/// The admin credential: `HMS_ADMIN_TOKEN`, else the host's data directory.
pub(crate) fn admin_token(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("HMS_ADMIN_TOKEN") {
        return Ok(token.trim().to_string());
    }
    let path = Auth::admin_token_path(data_dir);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!("no admin credential: set HMS_ADMIN_TOKEN or point --data-dir at the host's data directory ({} unreadable)", path.display())
    })?;
    Ok(token.trim().to_string())
}
