//! Endpoint load limits, checked before an execution starts: `rate_limit:` (GCRA, per client,
//! header value or globally) and `max_in_flight:` (executions at once, with a bounded queue).
//! Both answer at once when the endpoint is past them, instead of queueing without bound.
//! Their state belongs to one config version: a reload starts them afresh.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::RequestContext;
use crate::plan::{Endpoint, InFlightLimit, RateLimit, RateLimitKey};

/// Why a request was not admitted.
pub(crate) enum Refused {
    /// `max_in_flight` and its queue are full.
    Overloaded,
    /// Past `rate_limit`; a request may succeed after this long.
    RateLimited(Duration),
}

impl Refused {
    /// `overloaded` or `rate_limited`, for the metrics.
    #[cfg(feature = "metrics")]
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Overloaded => "overloaded",
            Self::RateLimited(_) => "rate_limited",
        }
    }

    pub(crate) fn into_error(self, endpoint: &str) -> super::ExecuteError {
        let endpoint = endpoint.to_owned();
        match self {
            // A turn frees up as soon as an execution ends; a second is a fair guess.
            Self::Overloaded => super::ExecuteError::Overloaded {
                endpoint,
                retry_after: Duration::from_secs(1),
            },
            Self::RateLimited(retry_after) => super::ExecuteError::RateLimited {
                endpoint,
                retry_after,
            },
        }
    }
}

/// An endpoint's limits.
pub(crate) struct Admission {
    in_flight: Option<InFlight>,
    rate: Option<Rate>,
}

impl Admission {
    /// The limits `e` declares, or `None`.
    pub(crate) fn of(e: &Endpoint) -> Option<Box<Self>> {
        if e.max_in_flight.is_none() && e.rate_limit.is_none() {
            return None;
        }
        Some(Box::new(Self {
            in_flight: e.max_in_flight.map(InFlight::new),
            rate: e.rate_limit.as_ref().map(Rate::new),
        }))
    }

    /// Admits the request (the permit ends its turn when dropped), waiting in the queue up to
    /// `wait`, or refuses it.
    pub(crate) async fn admit(
        &self,
        request: &RequestContext,
        wait: Duration,
    ) -> Result<Option<OwnedSemaphorePermit>, Refused> {
        if let Some(rate) = &self.rate {
            rate.check(request)?;
        }
        match &self.in_flight {
            Some(limit) => limit.enter(wait).await.map(Some),
            None => Ok(None),
        }
    }
}

struct InFlight {
    permits: Arc<Semaphore>,
    /// Requests waiting for a permit.
    waiting: AtomicUsize,
    queue: usize,
}

impl InFlight {
    fn new(limit: InFlightLimit) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.limit.min(Semaphore::MAX_PERMITS))),
            waiting: AtomicUsize::new(0),
            queue: limit.queue,
        }
    }

    async fn enter(&self, wait: Duration) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Overloaded);
        }
        /// Leaves the queue however the wait ends (its request may be cancelled).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refused::Overloaded),
        }
    }
}

/// GCRA (the "virtual scheduling" form of a token bucket): each key keeps the theoretical
/// arrival time of its next request.
struct Rate {
    /// Time one request uses up: the period divided by the requests allowed in it.
    emission: Duration,
    /// How far ahead of now a key's arrival time may run: `burst` emissions.
    tolerance: Duration,
    key: RateLimitKey,
    /// One bucket for `global`, a bounded map of them otherwise.
    global: Mutex<Option<Instant>>,
    keyed: moka::sync::Cache<String, Arc<Mutex<Option<Instant>>>>,
}

impl Rate {
    /// Keys counted separately at most; the least used are forgotten past this.
    const MAX_KEYS: u64 = 100_000;

    fn new(limit: &RateLimit) -> Self {
        let emission = limit.per / limit.requests.max(1);
        let tolerance = emission.saturating_mul(limit.burst.max(1));
        Self {
            emission,
            tolerance,
            key: limit.key.clone(),
            global: Mutex::new(None),
            keyed: moka::sync::Cache::builder()
                .max_capacity(Self::MAX_KEYS)
                // A bucket idle this long is full again: forgetting it changes nothing. (Capped
                // at a day: moka refuses idle times of centuries, which a config may ask for.)
                .time_to_idle(tolerance.clamp(Duration::from_secs(1), Duration::from_secs(86_400)))
                .build(),
        }
    }

    fn check(&self, request: &RequestContext) -> Result<(), Refused> {
        let key = match &self.key {
            RateLimitKey::Client => request.client.map(|ip| ip.to_string()),
            RateLimitKey::Header(name) => Some(match request.headers.get(name) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            }),
            _ => None,
        };
        match key {
            None => self.take(&self.global),
            Some(key) => {
                let bucket = self.keyed.get_with(key, Arc::default);
                self.take(&bucket)
            }
        }
    }

    fn take(&self, bucket: &Mutex<Option<Instant>>) -> Result<(), Refused> {
        let now = Instant::now();
        let mut tat = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let next = crate::layer::after(tat.map_or(now, |t| t.max(now)), self.emission);
        let ahead = next - now;
        if ahead > self.tolerance {
            return Err(Refused::RateLimited(ahead - self.tolerance));
        }
        *tat = Some(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(requests: u32, per: Duration, burst: u32) -> Rate {
        let mut r = RateLimit::default();
        r.requests = requests;
        r.per = per;
        r.burst = burst;
        r.key = RateLimitKey::Global;
        Rate::new(&r)
    }

    #[tokio::test(start_paused = true)]
    async fn gcra_allows_the_burst_then_one_per_emission() {
        let r = rate(10, Duration::from_secs(1), 3);
        let req = RequestContext::new();
        for _ in 0..3 {
            assert!(r.check(&req).is_ok());
        }
        let Err(Refused::RateLimited(after)) = r.check(&req) else {
            panic!("the fourth request is over the burst");
        };
        assert_eq!(after, Duration::from_millis(100));
        tokio::time::advance(after).await;
        assert!(r.check(&req).is_ok());
        assert!(r.check(&req).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn periods_of_any_length_neither_panic_nor_overflow() {
        let r = rate(1, Duration::from_secs(u64::MAX / 4), u32::MAX);
        let req = RequestContext::new();
        assert!(r.check(&req).is_ok());
        assert!(r.check(&req).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_counted_apart() {
        let mut limit = RateLimit::default();
        limit.key = RateLimitKey::Header("x-api-key".into());
        let r = Rate::new(&limit);
        let a = RequestContext::new().with_header("x-api-key", "a");
        let b = RequestContext::new().with_header("x-api-key", "b");
        assert!(r.check(&a).is_ok());
        assert!(r.check(&a).is_err());
        assert!(r.check(&b).is_ok());
    }
}
