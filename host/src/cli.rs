//! The `hms-host` command line: `run` starts a host; every other command is a
//! client of a running host's Core API.

use crate::auth::Auth;
use crate::client::Client;
use crate::config::{self, Config, Limits, Sandbox};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use http::Method;
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "hms-host",
    version,
    about = "Runs microservices as sandboxed WebAssembly components with a native Core"
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
    Run(RunArgs),
    /// Manage API keys (admin).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Exchange an API key for a token.
    Token {
        /// The API key printed by `keys create`.
        api_key: String,
    },
    /// List registered services.
    Services,
    /// Read the audit log (admin).
    Logs(LogsArgs),
    /// Upload a new version of a service to the running host and swap it in
    /// (admin). A version that fails validation is refused; the old keeps serving.
    Deploy {
        /// The service name the component declares.
        service: String,
        /// The component file.
        file: PathBuf,
    },
    /// List the versions of a service the running host has deployed.
    Versions { service: String },
    /// A deployed service's limits, requests in flight and the count of every
    /// limit it hit (admin).
    Stats { service: String },
    /// A service's private store (admin): export it as JSON lines, or import
    /// JSON lines into it (all or nothing; existing keys are replaced).
    #[command(subcommand)]
    Data(DataCommand),
    /// Switch a service back to an earlier version (admin).
    Rollback {
        service: String,
        /// Digest (or unique prefix) to switch to; default: the previous version.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address to listen on; with port 0 a free port is chosen. The bound
    /// address is printed on the first line of output.
    #[arg(long, env = "HMS_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Memory limit per component instance, in MiB.
    #[arg(long, env = "HMS_MEMORY_LIMIT_MB", default_value_t = config::DEFAULT_MEMORY_LIMIT >> 20)]
    memory_limit_mb: u64,
    /// Time limit per request, in milliseconds.
    #[arg(long, env = "HMS_REQUEST_TIMEOUT_MS", default_value_t = config::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)]
    request_timeout_ms: u64,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "HMS_TOKEN_TTL_SECS", default_value_t = config::DEFAULT_TOKEN_TTL.as_secs())]
    token_ttl_secs: u64,
    /// What an answered request's audit events survive: `full` (fsync per
    /// group commit: power loss too) or `process` (kill -9 and process
    /// crashes, not an OS crash or power loss; much cheaper).
    #[arg(long, env = "HMS_AUDIT_DURABILITY", default_value = "full")]
    audit_durability: crate::audit::Durability,
    /// Seconds a client has to send each request head (idle keep-alive time
    /// included); slower connections are closed.
    #[arg(long, env = "HMS_HEADER_TIMEOUT_SECS", default_value_t = config::DEFAULT_HEADER_TIMEOUT.as_secs())]
    header_timeout_secs: u64,
    /// TOML file of per-service limits and outbound grants: `[defaults]` and
    /// `[services.NAME]` sections (see the README). Its `[defaults]` apply
    /// over the limit flags above.
    #[arg(long, env = "HMS_CONFIG")]
    config: Option<PathBuf>,
    /// Component instances alive at once, host-wide.
    #[arg(long, env = "HMS_MAX_INSTANCES", default_value_t = config::DEFAULT_MAX_INSTANCES)]
    max_instances: u32,
    /// KiB of each freed instance memory kept resident and reset in place
    /// for the next instance; 0 hands every freed page back with madvise.
    #[arg(long, env = "HMS_POOL_KEEP_RESIDENT_KB", default_value_t = (crate::engine::DEFAULT_KEEP_RESIDENT >> 10) as u64)]
    pool_keep_resident_kb: u64,
    /// Also serve every `*.wasm` in this directory, and deploy files that
    /// appear in it later (repeatable).
    #[arg(long = "components-dir", env = "HMS_COMPONENTS_DIR")]
    components_dirs: Vec<PathBuf>,
    /// Load a JSON-lines file (as `data export` writes) into a service's
    /// store at start, before the host reports ready: `SERVICE=FILE`
    /// (repeatable; existing keys are replaced).
    #[arg(long = "import", value_name = "SERVICE=FILE", value_parser = parse_import)]
    imports: Vec<(String, PathBuf)>,
    /// Do not watch component files for changes.
    #[arg(long, env = "HMS_NO_WATCH")]
    no_watch: bool,
    /// Component files (`.wasm`) to serve.
    #[arg(required_unless_present = "components_dirs")]
    components: Vec<PathBuf>,
}

/// Where the host is and where its data lives (global flags).
#[derive(clap::Args)]
struct HostArgs {
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
    #[arg(long, global = true, env = "HMS_DATA_DIR", default_value = config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum DataCommand {
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

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key for a service; the secret is printed once.
    Create { service: String },
    /// List API keys (never their secrets).
    List,
    /// Revoke an API key; tokens issued from it stop verifying.
    Revoke { id: String },
}

#[derive(clap::Args)]
struct LogsArgs {
    /// Only events of this service.
    #[arg(long)]
    service: Option<String>,
    /// Only events of this trace id.
    #[arg(long)]
    trace: Option<String>,
    /// Only events at or above this level (debug, info, warn, error).
    #[arg(long)]
    level: Option<String>,
    /// Keep printing new events as they are committed.
    #[arg(long, short)]
    follow: bool,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
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
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command, cli.host)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, host: HostArgs) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(args, host.data_dir).await,
        Command::Keys { command } => keys(command, &host).await,
        Command::Token { api_key } => {
            let v = client(&host, false)?
                .call(
                    Method::POST,
                    "/_hms/auth/token",
                    Some(&json!({ "api_key": api_key })),
                )
                .await?;
            println!("{}", v["token"].as_str().unwrap_or_default());
            Ok(())
        }
        Command::Services => {
            let v = client(&host, false)?
                .call(Method::GET, "/_hms/services", None)
                .await?;
            for s in v["services"].as_array().into_iter().flatten() {
                let routes: Vec<&str> = s["routes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{:<24} {:<9} {:<28} {} {}",
                    s["name"].as_str().unwrap_or_default(),
                    s["kind"].as_str().unwrap_or_default(),
                    s["url"].as_str().unwrap_or_default(),
                    short_version(s["version"].as_str().unwrap_or_default()),
                    routes.join(" ")
                );
            }
            Ok(())
        }
        Command::Logs(args) => logs(args, &host).await,
        Command::Deploy { service, file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            let path = format!("/_hms/services/{service}/versions");
            let v = client(&host, true)?
                .send_bytes(
                    Method::POST,
                    &path,
                    bytes.into(),
                    &[("content-type", "application/wasm")],
                )
                .await?
                .into_result()?;
            println!(
                "{} {}",
                v["name"].as_str().unwrap_or_default(),
                v["version"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        Command::Versions { service } => {
            let path = format!("/_hms/services/{service}/versions");
            let v = client(&host, false)?.call(Method::GET, &path, None).await?;
            for ver in v["versions"].as_array().into_iter().flatten() {
                let at = std::time::UNIX_EPOCH
                    + Duration::from_secs(ver["deployed_at"].as_u64().unwrap_or(0));
                println!(
                    "{} {} {:<6} {}",
                    ver["version"].as_str().unwrap_or_default(),
                    humantime::format_rfc3339_seconds(at),
                    if ver["active"] == true { "active" } else { "" },
                    ver["source"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Stats { service } => {
            let path = format!("/_hms/services/{service}/stats");
            let v = client(&host, true)?.call(Method::GET, &path, None).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Command::Data(DataCommand::Export { service, output }) => {
            let path = format!("/_hms/data/{service}");
            let (parts, lines) = client(&host, true)?
                .send_raw(Method::GET, &path, bytes::Bytes::new(), &[])
                .await?;
            if !parts.status.is_success() {
                let v: Value = serde_json::from_slice(&lines).unwrap_or(Value::Null);
                bail!(
                    "{}: {}",
                    parts.status,
                    v["message"].as_str().unwrap_or_default()
                );
            }
            match output {
                Some(file) => std::fs::write(&file, &lines)
                    .with_context(|| format!("{}: cannot write", file.display()))?,
                None => std::io::stdout().write_all(&lines)?,
            }
            Ok(())
        }
        Command::Data(DataCommand::Import { service, file }) => {
            let lines =
                std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            let path = format!("/_hms/data/{service}");
            let v = client(&host, true)?
                .send_bytes(Method::POST, &path, bytes::Bytes::from(lines), &[])
                .await?
                .into_result()
                .with_context(|| format!("importing {}", file.display()))?;
            println!("imported {} records into {service}", v["imported"]);
            Ok(())
        }
        Command::Rollback { service, to } => {
            let path = format!("/_hms/services/{service}/rollback");
            let v = client(&host, true)?
                .call(Method::POST, &path, Some(&json!({ "to": to })))
                .await?;
            println!(
                "{} {}",
                v["name"].as_str().unwrap_or_default(),
                v["version"].as_str().unwrap_or_default()
            );
            Ok(())
        }
    }
}

async fn run(args: RunArgs, data_dir: PathBuf) -> anyhow::Result<()> {
    for file in &args.components {
        if !file.is_file() {
            bail!("{}: no such component file", file.display());
        }
    }
    for (service, file) in &args.imports {
        if !file.is_file() {
            bail!("--import {service}={}: no such file", file.display());
        }
    }
    if args.memory_limit_mb == 0 || args.request_timeout_ms == 0 {
        bail!("--memory-limit-mb and --request-timeout-ms must be at least 1");
    }
    let mut sandbox = Sandbox {
        defaults: Limits {
            memory: args.memory_limit_mb << 20,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            ..Limits::default()
        },
        ..Sandbox::default()
    };
    if let Some(path) = &args.config {
        sandbox.load_file(path).map_err(anyhow::Error::msg)?;
    }
    let config = Config {
        listen: args.listen,
        data_dir,
        components: args.components,
        components_dirs: args.components_dirs,
        watch: !args.no_watch,
        imports: args.imports,
        sandbox,
        max_instances: args.max_instances,
        keep_resident: (args.pool_keep_resident_kb << 10) as usize,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        audit_durability: args.audit_durability,
        header_timeout: Duration::from_secs(args.header_timeout_secs),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // The first line of output is the bound address: scripts and tests read it.
    println!("hms-host listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    crate::run(config, listener, shutdown_signal()).await
}

fn parse_import(s: &str) -> Result<(String, PathBuf), String> {
    let (service, file) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected SERVICE=FILE"))?;
    crate::registry::validate_service_name(service).map_err(|e| e.to_string())?;
    Ok((service.to_string(), PathBuf::from(file)))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining requests in flight");
}

fn client(host: &HostArgs, admin: bool) -> anyhow::Result<Client> {
    let client = Client::new(&host.url);
    if !admin {
        return Ok(client);
    }
    Ok(client.with_bearer(admin_token(&host.data_dir)?))
}

/// The admin credential: `HMS_ADMIN_TOKEN`, else the host's data directory.
fn admin_token(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("HMS_ADMIN_TOKEN") {
        return Ok(token.trim().to_string());
    }
    let path = Auth::admin_token_path(data_dir);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!("no admin credential: set HMS_ADMIN_TOKEN or point --data-dir at the host's data directory ({} unreadable)", path.display())
    })?;
    Ok(token.trim().to_string())
}

async fn keys(command: KeysCommand, host: &HostArgs) -> anyhow::Result<()> {
    let client = client(host, true)?;
    match command {
        KeysCommand::Create { service } => {
            let v = client
                .call(
                    Method::POST,
                    "/_hms/keys",
                    Some(&json!({ "service": service })),
                )
                .await?;
            println!("{}", v["api_key"].as_str().unwrap_or_default());
            eprintln!(
                "created key {} for {}; the secret above is shown only once",
                v["id"].as_str().unwrap_or_default(),
                service
            );
        }
        KeysCommand::List => {
            let v = client.call(Method::GET, "/_hms/keys", None).await?;
            for k in v["keys"].as_array().into_iter().flatten() {
                let state = if k["revoked_at"].is_null() {
                    "active"
                } else {
                    "revoked"
                };
                println!(
                    "{:<16} {:<24} {}",
                    k["id"].as_str().unwrap_or_default(),
                    k["service"].as_str().unwrap_or_default(),
                    state
                );
            }
        }
        KeysCommand::Revoke { id } => {
            client
                .call(Method::DELETE, &format!("/_hms/keys/{id}"), None)
                .await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

async fn logs(args: LogsArgs, host: &HostArgs) -> anyhow::Result<()> {
    let client = client(host, true)?;
    let mut after = 0u64;
    loop {
        let mut query = vec![format!("after={after}"), "limit=1000".to_string()];
        for (k, v) in [
            ("service", &args.service),
            ("trace", &args.trace),
            ("level", &args.level),
        ] {
            if let Some(v) = v {
                query.push(format!("{k}={}", url_escape(v)));
            }
        }
        if args.follow {
            query.push("wait=25".into());
        }
        let v = client
            .call(
                Method::GET,
                &format!("/_hms/events?{}", query.join("&")),
                None,
            )
            .await?;
        let events = v["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            after = after.max(e["seq"].as_u64().unwrap_or(after));
            if args.json {
                println!("{e}");
            } else {
                let time = std::time::UNIX_EPOCH
                    + Duration::from_millis(e["time_ms"].as_u64().unwrap_or(0));
                println!(
                    "{:>6} {} {:<5} {:<20} {} {}",
                    e["seq"],
                    humantime::format_rfc3339_millis(time),
                    e["level"].as_str().unwrap_or_default(),
                    e["service"].as_str().unwrap_or_default(),
                    e["trace_id"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default()
                );
            }
        }
        std::io::stdout().flush()?;
        if events.len() < 1000 && !args.follow {
            return Ok(());
        }
    }
}

fn short_version(v: &str) -> &str {
    match v.strip_prefix("sha256:") {
        Some(hex) => &v[..("sha256:".len() + hex.len().min(12))],
        None => v,
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
