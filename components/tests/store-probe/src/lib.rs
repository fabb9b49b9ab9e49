//! Test guest (probe): `store-probe-service`, routes `/store-probe/...`. It
//! makes one call to its private store (`hms:core/store`) per request, on
//! the caller's instruction, so tests can check what the host's store does:
//! durability, isolation between services, limits, quotas, atomicity.
//!
//! `POST /store-probe/op` with one of
//!
//! * `{"op": "get", "key": "k"}` → 200 `{"value": "<UTF-8, lossy>"|null}`
//! * `{"op": "set", "key": "k", "value": "v"}` → 200 `{"ok": true}`
//! * `{"op": "delete", "key": "k"}` → 200 `{"existed": bool}`
//! * `{"op": "list", "prefix": "p", "cursor": "c"|null, "limit": n}` → 200
//!   `{"keys": [...], "next": "..."|null}` (`prefix` defaults to `""`)
//! * `{"op": "cas", "key": "k", "expected": "old"|null, "value": "v"}` → 200
//!   `{"swapped": bool}` (`expected` null or absent: only if absent)
//! * `{"op": "increment", "key": "k", "delta": n}` → 200 `{"value": n}`
//!
//! With `"value_repeat": n`, the value written by `set` or `cas` is `value`
//! repeated `n` times, so tests can send large values cheaply. A store
//! error is 409 `{"code": "store_error", "kind": "invalid-key" |
//! "value-too-large" | "quota-exceeded" | "not-a-number" | "unavailable",
//! "detail": <the error's payload: string, number or null>}`. Bad JSON or an
//! unknown op is 400; another method is 405, another path 404.

use hms_guest::serde_json::{Value, json};
use hms_guest::store::{self, StoreError};
use hms_guest::{Answer, Params, Request, Response, Router, Service, ServiceInfo};
use serde::Deserialize;

struct StoreProbe;

impl Service for StoreProbe {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "store-probe-service".into(),
            routes: vec!["/store-probe/...".into()],
        }
    }

    fn router() -> Router {
        Router::new().post("/store-probe/op", op)
    }
}

fn op(req: &Request, _: &Params) -> Answer {
    let op: Op = req.json()?;
    Ok(perform(op).unwrap_or_else(store_error))
}

hms_guest::service!(StoreProbe);

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Op {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
        value_repeat: Option<usize>,
    },
    Delete {
        key: String,
    },
    List {
        #[serde(default)]
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    },
    Cas {
        key: String,
        expected: Option<String>,
        value: String,
        value_repeat: Option<usize>,
    },
    Increment {
        key: String,
        delta: i64,
    },
}

/// `value`, repeated `times` if given.
fn repeated(value: String, times: Option<usize>) -> String {
    match times {
        Some(n) => value.repeat(n),
        None => value,
    }
}

fn perform(op: Op) -> Result<Response, StoreError> {
    let answer = match op {
        Op::Get { key } => {
            let value = store::get(&key)?.map(|v| String::from_utf8_lossy(&v).into_owned());
            json!({ "value": value })
        }
        Op::Set {
            key,
            value,
            value_repeat,
        } => {
            store::set(&key, repeated(value, value_repeat).as_bytes())?;
            json!({ "ok": true })
        }
        Op::Delete { key } => json!({ "existed": store::delete(&key)? }),
        Op::List {
            prefix,
            cursor,
            limit,
        } => {
            let page = store::list_keys(&prefix, cursor.as_deref(), limit)?;
            json!({ "keys": page.keys, "next": page.next })
        }
        Op::Cas {
            key,
            expected,
            value,
            value_repeat,
        } => {
            let value = repeated(value, value_repeat);
            let expected = expected.as_ref().map(String::as_bytes);
            json!({ "swapped": store::compare_and_swap(&key, expected, value.as_bytes())? })
        }
        Op::Increment { key, delta } => json!({ "value": store::increment(&key, delta)? }),
    };
    Ok(Response::json(200, &answer))
}

fn store_error(e: StoreError) -> Response {
    let (kind, detail) = match e {
        StoreError::InvalidKey(why) => ("invalid-key", json!(why)),
        StoreError::ValueTooLarge(max) => ("value-too-large", json!(max)),
        StoreError::QuotaExceeded(quota) => ("quota-exceeded", json!(quota)),
        StoreError::NotANumber => ("not-a-number", Value::Null),
        StoreError::Unavailable(why) => ("unavailable", json!(why)),
    };
    Response::json(
        409,
        &json!({ "code": "store_error", "kind": kind, "detail": detail }),
    )
}
