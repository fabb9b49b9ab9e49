//! `hms-host keys ...` and `hms-host token`: API keys and tokens.

use super::{HostArgs, client};
use crate::outln;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a service; the secret is printed once.
    Create { service: String },
    /// List API keys (never their secrets).
    List {
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key; tokens issued from it stop verifying.
    Revoke { id: String },
}

pub async fn keys(command: KeysCommand, host: &HostArgs) -> anyhow::Result<()> {
    let client = client(host, true)?;
    match command {
        KeysCommand::Create { service } => {
            let key = client.create_key(&service).await?;
            outln!("{}", key.api_key)?;
            eprintln!(
                "created key {} for {}; the secret above is shown only once",
                key.id, key.service
            );
        }
        KeysCommand::List { json } => {
            let list = client.list_keys().await?;
            if json {
                return super::output::json(&list);
            }
            for k in &list.keys {
                let state = if k.revoked_at.is_none() {
                    "active"
                } else {
                    "revoked"
                };
                outln!("{:<16} {:<24} {}", k.id, k.service, state)?;
            }
        }
        KeysCommand::Revoke { id } => {
            client.revoke_key(&id).await?;
            outln!("revoked {id}")?;
        }
    }
    Ok(())
}

/// Exchanges an API key for a token and prints the token.
pub async fn token(api_key: &str, host: &HostArgs) -> anyhow::Result<()> {
    let issued = client(host, false)?.token(api_key).await?;
    outln!("{}", issued.token)?;
    Ok(())
}
