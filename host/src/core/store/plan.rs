//! What a batch of writes does, decided once for every backend: given the
//! current value of each key the batch touches and the bytes in use, the
//! answer of each write and the values to store. Backends read those keys
//! and write the changes inside one transaction of their own.

use super::{Done, Quota, StoreError, Write};
use std::collections::BTreeMap;

/// The outcome of a batch.
#[derive(Debug)]
pub struct Plan {
    /// One answer per write, in order.
    pub outcomes: Vec<Result<Done, StoreError>>,
    /// Keys whose value changed: the new value, or `None` for deleted.
    pub changes: BTreeMap<String, Option<Vec<u8>>>,
    /// Bytes of keys plus values in use afterwards.
    pub used: u64,
}

impl Write {
    /// Every key the write reads or writes.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Write::Set(k, _) | Write::Delete(k) | Write::Cas(k, ..) | Write::Increment(k, _) => {
                vec![k.as_str()]
            }
            Write::Import(records) => records.iter().map(|(k, _)| k.as_str()).collect(),
        }
    }
}

/// Applies `writes` in order to `values` (the current value of every key
/// they touch; absent keys map to `None`) within `quota`. A write that
/// would pass the quota (and grow the store) is refused; an import is all
/// or nothing.
pub fn plan<'w>(
    writes: impl IntoIterator<Item = &'w Write>,
    mut values: BTreeMap<String, Option<Vec<u8>>>,
    used: u64,
    quota: Quota,
) -> Plan {
    let mut plan = Plan {
        outcomes: Vec::new(),
        changes: BTreeMap::new(),
        used,
    };
    for write in writes {
        let outcome = apply(write, &mut values, &mut plan, quota);
        plan.outcomes.push(outcome);
    }
    plan
}

fn size(key: &str, value: Option<&[u8]>) -> u64 {
    value.map_or(0, |v| (key.len() + v.len()) as u64)
}

fn apply(
    write: &Write,
    values: &mut BTreeMap<String, Option<Vec<u8>>>,
    plan: &mut Plan,
    quota: Quota,
) -> Result<Done, StoreError> {
    let current =
        |values: &BTreeMap<String, Option<Vec<u8>>>, key: &str| values.get(key).cloned().flatten();
    let over = || Err(StoreError::QuotaExceeded(quota.total));
    // Sets `key` to `new` if the quota allows it (or it does not grow).
    let mut store = |values: &mut BTreeMap<String, Option<Vec<u8>>>, key: &str, new: Vec<u8>| {
        let old = values.get(key).cloned().flatten();
        let next = plan.used - size(key, old.as_deref()) + size(key, Some(&new));
        if next > quota.total && next > plan.used {
            return false;
        }
        plan.used = next;
        values.insert(key.to_string(), Some(new.clone()));
        plan.changes.insert(key.to_string(), Some(new));
        true
    };
    match write {
        Write::Set(key, value) => {
            if store(values, key, value.clone()) {
                Ok(Done::Unit)
            } else {
                over()
            }
        }
        Write::Delete(key) => {
            let old = current(values, key);
            if let Some(old) = &old {
                plan.used -= size(key, Some(old));
                values.insert(key.clone(), None);
                plan.changes.insert(key.clone(), None);
            }
            Ok(Done::Bool(old.is_some()))
        }
        Write::Cas(key, expected, value) => {
            if current(values, key) != *expected {
                Ok(Done::Bool(false))
            } else if store(values, key, value.clone()) {
                Ok(Done::Bool(true))
            } else {
                over()
            }
        }
        Write::Increment(key, delta) => {
            let base = match current(values, key) {
                None => Some(0),
                Some(v) => std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok()),
            };
            match base.and_then(|b| b.checked_add(*delta)) {
                None => Err(StoreError::NotANumber),
                Some(sum) if store(values, key, sum.to_string().into_bytes()) => Ok(Done::Int(sum)),
                Some(_) => over(),
            }
        }
        Write::Import(records) => {
            // All or nothing: the total after every record, first.
            let mut trial = values.clone();
            let mut next = plan.used;
            for (key, value) in records {
                let old = trial.get(key).cloned().flatten();
                next = next - size(key, old.as_deref()) + size(key, Some(value));
                trial.insert(key.clone(), Some(value.clone()));
            }
            if next > quota.total && next > plan.used {
                return over();
            }
            for (key, value) in records {
                values.insert(key.clone(), Some(value.clone()));
                plan.changes.insert(key.clone(), Some(value.clone()));
            }
            plan.used = next;
            Ok(Done::Count(records.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        total: 20,
        key: 8,
        value: 16,
    };

    fn absent(keys: &[&str]) -> BTreeMap<String, Option<Vec<u8>>> {
        keys.iter().map(|k| (k.to_string(), None)).collect()
    }

    #[test]
    fn writes_of_one_batch_see_each_other() {
        let writes = [
            Write::Increment("n".into(), 2),
            Write::Increment("n".into(), 3),
            Write::Cas("n".into(), Some(b"5".to_vec()), b"7".to_vec()),
            Write::Delete("n".into()),
            Write::Delete("n".into()),
        ];
        let p = plan(&writes, absent(&["n"]), 0, QUOTA);
        assert_eq!(
            p.outcomes,
            [
                Ok(Done::Int(2)),
                Ok(Done::Int(5)),
                Ok(Done::Bool(true)),
                Ok(Done::Bool(true)),
                Ok(Done::Bool(false))
            ]
        );
        assert_eq!(p.changes.get("n"), Some(&None));
        assert_eq!(p.used, 0);
    }

    #[test]
    fn the_quota_refuses_growth_but_not_shrinking() {
        let big = vec![b'x'; 15];
        let writes = [
            Write::Set("a".into(), big.clone()), // 16 bytes
            Write::Set("b".into(), big),         // would be 32
            Write::Set("a".into(), b"y".to_vec()),
            Write::Import(vec![("c".into(), vec![b'z'; 17])]), // 2 + 18 = 20: fits
            Write::Import(vec![("d".into(), b"1".to_vec())]),  // 22: refused whole
        ];
        let p = plan(&writes, absent(&["a", "b", "c", "d"]), 0, QUOTA);
        assert!(p.outcomes[0].is_ok());
        assert_eq!(p.outcomes[1], Err(StoreError::QuotaExceeded(20)));
        assert!(p.outcomes[2].is_ok() && p.outcomes[3].is_ok());
        assert_eq!(p.outcomes[4], Err(StoreError::QuotaExceeded(20)));
        assert_eq!(p.used, 20);
        assert!(!p.changes.contains_key("b") && !p.changes.contains_key("d"));
    }

    #[test]
    fn increments_of_non_numbers_and_overflows_are_refused() {
        let mut values = absent(&[]);
        values.insert("t".into(), Some(b"text".to_vec()));
        values.insert("m".into(), Some(i64::MAX.to_string().into_bytes()));
        let writes = [
            Write::Increment("t".into(), 1),
            Write::Increment("m".into(), 1),
        ];
        let p = plan(
            &writes,
            values,
            30,
            Quota {
                total: 100,
                ..QUOTA
            },
        );
        assert_eq!(
            p.outcomes,
            [Err(StoreError::NotANumber), Err(StoreError::NotANumber)]
        );
        assert!(p.changes.is_empty());
    }
}
