//! The service's private durable store (`hms:core/store`): the WIT
//! functions `get`, `set`, `delete`, `list_keys`, `compare_and_swap` and
//! `increment`, plus [`get_json`] and [`set_json`] for values kept as JSON
//! text (the convention).

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::bindings::hms::core::store::*;

/// Why [`get_json`] or [`set_json`] failed.
#[derive(Debug)]
pub enum JsonError {
    /// The store itself failed (see [`StoreError`]).
    Store(StoreError),
    /// The stored value is not JSON of the expected shape.
    Decode(serde_json::Error),
    /// The value could not be encoded as JSON.
    Encode(serde_json::Error),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Store(e) => write!(f, "store failed: {e:?}"),
            JsonError::Decode(e) => write!(f, "stored value is not valid JSON: {e}"),
            JsonError::Encode(e) => write!(f, "cannot encode value as JSON: {e}"),
        }
    }
}

impl std::error::Error for JsonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JsonError::Store(e) => Some(e),
            JsonError::Decode(e) | JsonError::Encode(e) => Some(e),
        }
    }
}

impl From<StoreError> for JsonError {
    fn from(e: StoreError) -> JsonError {
        JsonError::Store(e)
    }
}

/// The value at `key` parsed as JSON, or `None` if there is none.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, JsonError> {
    match get(key)? {
        Some(value) => serde_json::from_slice(&value)
            .map(Some)
            .map_err(JsonError::Decode),
        None => Ok(None),
    }
}

/// Set `key` to `value` as JSON text.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), JsonError> {
    let data = serde_json::to_vec(value).map_err(JsonError::Encode)?;
    set(key, &data)?;
    Ok(())
}
