//! A keyed token bucket, used to throttle failed authentication attempts.
//!
//! Every key (a client address, a calling service) has a bucket of at most
//! `burst` tokens that refills at `refill_per_sec`. An attempt may be made
//! while the bucket holds at least one token ([`KeyedLimiter::check`]); only
//! the attempts the caller decides to count take a token
//! ([`KeyedLimiter::charge`]). Auth counts failures only, so a client that
//! keeps presenting a valid key is never slowed down.
//!
//! Memory is bounded: a key without a bucket is treated as a full bucket, so
//! full buckets carry no information and are dropped first; when more than
//! `max_keys` keys are drained at once (an attacker spraying addresses), the
//! least-drained ones are forgotten.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Size and refill rate of every bucket, and how many buckets are kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Attempts a key may make in a row before it must wait (at least 1).
    pub burst: u32,
    /// Tokens regained per second (greater than zero).
    pub refill_per_sec: f64,
    /// Most keys tracked at once (at least 1).
    pub max_keys: usize,
}

/// Per-key token buckets behind one lock; share it behind an `Arc` or inside
/// another shared structure.
pub struct KeyedLimiter<K> {
    limits: Limits,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens left at `at`.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Tokens held at `now`, refilled since `at` and capped at the burst.
    fn level(&self, now: Instant, limits: &Limits) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * limits.refill_per_sec).min(f64::from(limits.burst))
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter with no buckets yet.
    ///
    /// # Panics
    /// If `limits` has a zero burst, a refill rate that is not a positive
    /// finite number, or a zero `max_keys`.
    pub fn new(limits: Limits) -> Self {
        assert!(limits.burst >= 1, "burst must be at least 1");
        assert!(
            limits.refill_per_sec.is_finite() && limits.refill_per_sec > 0.0,
            "refill rate must be positive"
        );
        assert!(limits.max_keys >= 1, "max_keys must be at least 1");
        KeyedLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if `key` may make an attempt now; otherwise how long until it may.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Takes one token from `key`'s bucket (an attempt that counts). Returns
    /// `true` if this emptied the bucket, i.e. `key` is now held back.
    pub fn charge(&self, key: &K) -> bool {
        self.charge_at(key, Instant::now())
    }

    /// How many keys currently have a bucket.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let Some(bucket) = self.lock().get(key).copied() else {
            return Ok(());
        };
        let level = bucket.level(now, &self.limits);
        if level >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - level) / self.limits.refill_per_sec,
            ))
        }
    }

    fn charge_at(&self, key: &K, now: Instant) -> bool {
        let limits = self.limits;
        let mut buckets = self.lock();
        let before = match buckets.get(key) {
            Some(bucket) => bucket.level(now, &limits),
            None => {
                if buckets.len() >= limits.max_keys {
                    evict(&mut buckets, now, &limits);
                }
                f64::from(limits.burst)
            }
        };
        let tokens = (before - 1.0).max(0.0);
        buckets.insert(key.clone(), Bucket { tokens, at: now });
        before >= 1.0 && tokens < 1.0
    }

    // Poisoning is ignored: every critical section leaves the map valid.
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Bucket>> {
        crate::base::sync::lock(&self.buckets)
    }
}

/// Makes room for at least one new bucket, and for an eighth of `max_keys`
/// when it can, so that the O(n) sweep runs at most once per `max_keys / 8`
/// insertions however the keys arrive.
fn evict<K: Hash + Eq + Clone>(buckets: &mut HashMap<K, Bucket>, now: Instant, limits: &Limits) {
    // A full bucket means the same as no bucket.
    let full = f64::from(limits.burst);
    buckets.retain(|_, b| b.level(now, limits) < full);
    let keep = limits.max_keys - (limits.max_keys / 8).max(1);
    if buckets.len() <= keep {
        return;
    }
    // Every bucket is drained: forget the ones closest to full, which are
    // the least restricted and so lose the least by starting over.
    let mut levels: Vec<(f64, K)> = buckets
        .iter()
        .map(|(k, b)| (b.level(now, limits), k.clone()))
        .collect();
    let drop = buckets.len() - keep;
    levels.select_nth_unstable_by(drop - 1, |a, b| b.0.total_cmp(&a.0));
    for (_, key) in &levels[..drop] {
        buckets.remove(key);
    }
}

/// `d` rounded up to whole seconds, at least 1: the value of a `Retry-After`
/// header after which a retry is certain to be admitted.
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        burst: 3,
        refill_per_sec: 1.0,
        max_keys: 16,
    };

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_for_the_refill() {
        let limiter = KeyedLimiter::new(LIMITS);
        let t0 = Instant::now();
        assert_eq!(limiter.check_at(&"a", t0), Ok(()));
        assert!(!limiter.charge_at(&"a", t0));
        assert!(!limiter.charge_at(&"a", t0));
        assert_eq!(limiter.check_at(&"a", t0), Ok(()));
        assert!(limiter.charge_at(&"a", t0), "the third charge empties it");
        assert_eq!(limiter.check_at(&"a", t0), Err(secs(1.0)));
        // Partially refilled: the wait shrinks, and is still refused.
        assert_eq!(limiter.check_at(&"a", t0 + secs(0.25)), Err(secs(0.75)));
        // One token back after a second: one more attempt, then wait again.
        let t1 = t0 + secs(1.0);
        assert_eq!(limiter.check_at(&"a", t1), Ok(()));
        assert!(limiter.charge_at(&"a", t1));
        assert_eq!(limiter.check_at(&"a", t1), Err(secs(1.0)));
        // Refills cap at the burst, however long the pause.
        let t2 = t1 + secs(3600.0);
        for _ in 0..3 {
            assert_eq!(limiter.check_at(&"a", t2), Ok(()));
            limiter.charge_at(&"a", t2);
        }
        assert!(limiter.check_at(&"a", t2).is_err());
    }

    #[test]
    fn charging_an_empty_bucket_does_not_dig_a_deeper_hole() {
        let limiter = KeyedLimiter::new(LIMITS);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.charge_at(&"a", t0);
        }
        // Charges while held back (e.g. racing requests) floor at zero and
        // do not re-report the transition.
        for _ in 0..10 {
            assert!(!limiter.charge_at(&"a", t0));
        }
        assert_eq!(limiter.check_at(&"a", t0 + secs(1.0)), Ok(()));
    }

    #[test]
    fn keys_are_independent() {
        let limiter = KeyedLimiter::new(LIMITS);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.charge_at(&"attacker", t0);
        }
        assert!(limiter.check_at(&"attacker", t0).is_err());
        assert_eq!(limiter.check_at(&"someone-else", t0), Ok(()));
        assert_eq!(limiter.tracked(), 1, "checking does not create buckets");
    }

    #[test]
    fn uncharged_attempts_never_limit() {
        let limiter = KeyedLimiter::new(LIMITS);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            assert_eq!(limiter.check_at(&"good", now), Ok(()));
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn full_buckets_are_evicted_first() {
        let limiter = KeyedLimiter::new(LIMITS);
        let t0 = Instant::now();
        // 15 keys with one failure each, long ago (full again by now), and
        // one drained key that must survive.
        for k in 0..15u32 {
            limiter.charge_at(&k, t0);
        }
        for _ in 0..3 {
            limiter.charge_at(&100, t0 + secs(5.0));
        }
        assert_eq!(limiter.tracked(), 16);
        let now = t0 + secs(5.5);
        limiter.charge_at(&200, now);
        assert_eq!(limiter.tracked(), 2, "the refilled buckets are gone");
        assert!(limiter.check_at(&100, now).is_err(), "still held back");
    }

    #[test]
    fn spraying_keys_cannot_grow_the_map_beyond_its_bound() {
        let limiter = KeyedLimiter::new(LIMITS);
        let t0 = Instant::now();
        // The victim of interest is drained completely; the spray drains
        // each of its keys by one token only.
        for _ in 0..3 {
            limiter.charge_at(&u32::MAX, t0);
        }
        for k in 0..10_000u32 {
            limiter.charge_at(&k, t0);
            assert!(limiter.tracked() <= LIMITS.max_keys);
        }
        // The most drained key is kept: it is the last to be forgotten.
        assert!(limiter.check_at(&u32::MAX, t0).is_err());
    }

    #[test]
    fn eviction_frees_an_eighth_at_once() {
        let limits = Limits {
            max_keys: 64,
            ..LIMITS
        };
        let limiter = KeyedLimiter::new(limits);
        let t0 = Instant::now();
        for k in 0..64u32 {
            limiter.charge_at(&k, t0);
        }
        limiter.charge_at(&1000, t0);
        // 64 - 8 kept, plus the new key: the next 7 insertions need no sweep.
        assert_eq!(limiter.tracked(), 57);
    }

    #[test]
    fn a_single_slot_limiter_still_works() {
        let limiter = KeyedLimiter::new(Limits {
            max_keys: 1,
            ..LIMITS
        });
        let t0 = Instant::now();
        limiter.charge_at(&"a", t0);
        limiter.charge_at(&"b", t0);
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(secs(0.001)), 1);
        assert_eq!(retry_after_secs(secs(1.0)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
    }

    #[test]
    #[should_panic(expected = "refill rate")]
    fn a_zero_refill_rate_is_refused() {
        KeyedLimiter::<u32>::new(Limits {
            refill_per_sec: 0.0,
            ..LIMITS
        });
    }
}
