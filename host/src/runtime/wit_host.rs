//! Core as components see it: the WIT `auth`, `logging`, `registry` and
//! `store` interfaces implemented on top of the native services in
//! [`crate::core`].
//!
//! Every capability has the same shape: the shared service (in [`Core`]),
//! paired with the [`Caller`] in the per-request [`CoreCtx`], on which the
//! generated `Host` traits are implemented.
//! The caller's identity comes from the host, never from an argument: that is
//! what makes "a component cannot log or authenticate as another" hold.

use crate::core::Core;
use crate::core::audit::Level;
use crate::core::auth::{AuthError, Presenter};
use crate::core::registry::RegistryError;
use crate::core::store::StoreError;
use crate::runtime::bindings::{
    auth as wit_auth, logging as wit_logging, registry as wit_registry, store as wit_store,
};
use crate::runtime::state::Caller;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per-request Core state kept in the store.
pub struct CoreCtx {
    pub core: Core,
    pub caller: Caller,
}

/// Implemented by the store's data to hand out its [`CoreCtx`].
pub trait HasCore: Send + 'static {
    fn core_ctx(&mut self) -> &mut CoreCtx;
}

/// Links the Core interfaces into `linker`.
pub fn add_to_linker<T: HasCore>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit_auth::add_to_linker::<T, HasSelf<CoreCtx>>(linker, |t| t.core_ctx())?;
    wit_logging::add_to_linker::<T, HasSelf<CoreCtx>>(linker, |t| t.core_ctx())?;
    wit_registry::add_to_linker::<T, HasSelf<CoreCtx>>(linker, |t| t.core_ctx())?;
    wit_store::add_to_linker::<T, HasSelf<CoreCtx>>(linker, |t| t.core_ctx())?;
    Ok(())
}

impl wit_auth::Host for CoreCtx {
    /// Failed attempts are throttled per calling service; a throttled
    /// service gets `invalid-key` (the WIT has no better case) until its
    /// budget refills.
    fn authenticate(&mut self, api_key: String) -> Result<String, wit_auth::AuthError> {
        let from = Presenter::Service(self.caller.service.to_string());
        let issued = self.core.auth.authenticate_from(&from, &api_key);
        if let Err(AuthError::Throttled { .. }) = &issued {
            self.core.metrics.refused("rate_limited");
        }
        issued.map(|t| t.token).map_err(to_wit_auth)
    }

    fn own_token(&mut self) -> String {
        if self.caller.loading {
            return String::new(); // no identity before the name is known
        }
        self.core.auth.workload_token(&self.caller.service).token
    }

    fn verify(&mut self, token: String) -> Result<wit_auth::Claims, wit_auth::AuthError> {
        let verified = self.core.auth.verify(&token);
        self.core.metrics.token_verified(verified.is_ok());
        let c = verified.map_err(to_wit_auth)?;
        Ok(wit_auth::Claims {
            subject: c.subject,
            key_id: c.key_id,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
        })
    }
}

fn to_wit_auth(e: AuthError) -> wit_auth::AuthError {
    match e {
        AuthError::InvalidKey | AuthError::UnknownKeyId(_) | AuthError::Throttled { .. } => {
            wit_auth::AuthError::InvalidKey
        }
        AuthError::Revoked => wit_auth::AuthError::Revoked,
        AuthError::Expired => wit_auth::AuthError::Expired,
        AuthError::InvalidToken(why) => wit_auth::AuthError::InvalidToken(why),
        // Fail closed: the host cannot tell whether the key was revoked.
        e @ AuthError::Stale => wit_auth::AuthError::InvalidToken(e.to_string()),
        // Storage and I/O problems are the host's, not the guest's: say little.
        other => {
            tracing::error!("auth failure inside a component call: {other}");
            wit_auth::AuthError::InvalidToken("host authentication error".into())
        }
    }
}

impl wit_logging::Host for CoreCtx {
    fn log_event(&mut self, level: wit_logging::Level, message: String) {
        let level = match level {
            wit_logging::Level::Debug => Level::Debug,
            wit_logging::Level::Info => Level::Info,
            wit_logging::Level::Warn => Level::Warn,
            wit_logging::Level::Error => Level::Error,
        };
        self.core
            .log(&self.caller.service, &self.caller.trace, level, message);
    }
}

impl wit_registry::Host for CoreCtx {
    fn register_service(
        &mut self,
        name: String,
        host: String,
        port: u16,
    ) -> Result<(), wit_registry::RegistryError> {
        let registered = self.core.registry.register_external(
            &name,
            &host,
            port,
            "external",
            None,
            Some(&self.caller.service),
        );
        match registered {
            Ok(e) => {
                // Shared with the other hosts in the background: the host
                // call cannot wait, and this host serves it already.
                if let Some(cluster) = self.core.cluster.clone() {
                    let entry = e.clone();
                    tokio::spawn(async move {
                        if let Err(err) = cluster.share_external(&entry).await {
                            tracing::warn!("sharing external service {}: {err}", entry.name);
                        }
                    });
                }
                let msg = format!("registered external service {} at {}", e.name, e.url);
                self.core
                    .log(&self.caller.service, &self.caller.trace, Level::Info, msg);
                Ok(())
            }
            Err(RegistryError::InvalidName(m)) => Err(wit_registry::RegistryError::InvalidName(m)),
            Err(RegistryError::NameTaken(m)) => Err(wit_registry::RegistryError::NameTaken(m)),
            Err(e) => Err(wit_registry::RegistryError::InvalidAddress(e.to_string())),
        }
    }

    fn discover_service(&mut self, name: String) -> Option<wit_registry::Endpoint> {
        self.core.discover(&name).map(|e| wit_registry::Endpoint {
            name: e.name,
            url: e.url,
            host: e.host,
            port: e.port,
            version: e.version,
        })
    }
}

impl CoreCtx {
    /// The calling service's own database.
    fn store(&self) -> Result<Arc<crate::core::store::Db>, wit_store::StoreError> {
        if self.caller.loading {
            return Err(wit_store::StoreError::Unavailable(
                "the store is not available while the component is being loaded".into(),
            ));
        }
        self.core
            .stores
            .of(&self.caller.service)
            .map_err(to_wit_store)
    }

    /// Runs store operation `op`, recording how long it took.
    async fn timed<T>(
        &self,
        op: &'static str,
        run: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, wit_store::StoreError> {
        let started = std::time::Instant::now();
        let result = run.await;
        self.core.metrics.store_operation(op, started.elapsed());
        result.map_err(to_wit_store)
    }

    /// The calling service's database, for a write: refused while this
    /// host cannot audit, so that no write is done that the request's
    /// events could not record.
    fn store_to_write(&self) -> Result<Arc<crate::core::store::Db>, wit_store::StoreError> {
        if let Some(why) = self.core.unavailable() {
            return Err(wit_store::StoreError::Unavailable(why));
        }
        self.store()
    }
}

fn to_wit_store(e: StoreError) -> wit_store::StoreError {
    match e {
        StoreError::InvalidKey(m) => wit_store::StoreError::InvalidKey(m),
        StoreError::ValueTooLarge(n) => wit_store::StoreError::ValueTooLarge(n),
        StoreError::QuotaExceeded(n) => wit_store::StoreError::QuotaExceeded(n),
        StoreError::NotANumber => wit_store::StoreError::NotANumber,
        StoreError::Unavailable(m) => {
            tracing::error!("store failure inside a component call: {m}");
            wit_store::StoreError::Unavailable(m)
        }
    }
}

impl wit_store::Host for CoreCtx {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit_store::StoreError> {
        let db = self.store()?;
        self.timed("get", db.get(&key)).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), wit_store::StoreError> {
        let db = self.store_to_write()?;
        self.timed("set", db.set(key, value)).await
    }

    async fn delete(&mut self, key: String) -> Result<bool, wit_store::StoreError> {
        let db = self.store_to_write()?;
        self.timed("delete", db.delete(key)).await
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<wit_store::KeyPage, wit_store::StoreError> {
        let db = self.store()?;
        let page = self
            .timed("list_keys", db.list_keys(&prefix, cursor.as_deref(), limit))
            .await?;
        Ok(wit_store::KeyPage {
            keys: page.keys,
            next: page.next,
        })
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, wit_store::StoreError> {
        let db = self.store_to_write()?;
        self.timed(
            "compare_and_swap",
            db.compare_and_swap(key, expected, value),
        )
        .await
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, wit_store::StoreError> {
        let db = self.store_to_write()?;
        self.timed("increment", db.increment(key, delta)).await
    }
}
