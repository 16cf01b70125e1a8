//! `cache:`: answers kept for a ttl, identical calls in flight coalesced into one, and an
//! expired answer standing in when the source fails (`stale_if_error`).
//!
//! The key is the step's definition (its type, operation and the integration entry it
//! resolves to, hashed when the plan is compiled, so a reload that changes any of them never
//! meets an old entry) plus its resolved params in canonical form (object keys sorted), hashed
//! to 128 bits (xxh3).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use xxhash_rust::xxh3::Xxh3;

use super::after;
use crate::plan::{CacheSettings, CacheStore};
use crate::source::{CacheStatus, DataSource, Recovery, SourceCall, SourceError, SourceErrorKind};

/// A cache key: a 128-bit hash of a step's definition and its params.
pub(crate) type Key = u128;

/// Hashes `definition` (anything that identifies what a call does) into the seed of a step's
/// keys.
pub(crate) fn definition_hash(definition: &str) -> Key {
    xxhash_rust::xxh3::xxh3_128(definition.as_bytes())
}

/// The key of a call of the step whose definition hashed to `definition`: its params and the
/// values of the relayed request headers `vary` names.
fn key(
    definition: Key,
    params: &serde_json::Map<String, Value>,
    vary: &[String],
    request: &crate::RequestContext,
) -> Key {
    let mut h = Xxh3::new();
    h.update(&definition.to_le_bytes());
    object(&mut h, params);
    for name in vary {
        let value = request
            .credentials
            .get(name)
            .or_else(|| request.headers.get(name.as_str()).and_then(Value::as_str));
        match value {
            Some(v) => {
                h.update(b"h");
                text(&mut h, v);
            }
            None => h.update(b"-"),
        }
    }
    h.digest128()
}

/// Feeds `v` to `h` in a canonical form: type tags, lengths, object keys sorted.
fn canonical(h: &mut Xxh3, v: &Value) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.update(b"d");
            text(h, &n.to_string());
        }
        Value::String(s) => {
            h.update(b"s");
            text(h, s);
        }
        Value::Array(items) => {
            h.update(b"a");
            h.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                canonical(h, item);
            }
        }
        Value::Object(map) => object(h, map),
    }
}

fn object(h: &mut Xxh3, map: &serde_json::Map<String, Value>) {
    h.update(b"o");
    h.update(&(map.len() as u64).to_le_bytes());
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (k, v) in entries {
        text(h, k);
        canonical(h, v);
    }
}

fn text(h: &mut Xxh3, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// A cached answer.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The source's answer, or its failure (with `error_ttl`).
    pub(crate) answer: Result<Value, (SourceErrorKind, String)>,
    /// Until when it answers.
    pub(crate) fresh_until: Instant,
    /// Until when it may stand in for a failed call (`stale_if_error`).
    pub(crate) stale_until: Instant,
}

/// Where entries live: in this process, or in Redis.
#[async_trait::async_trait]
pub(crate) trait Store: Send + Sync + 'static {
    /// The entry under `key`, if it is still within its stale window.
    async fn get(&self, key: Key) -> Option<Arc<Entry>>;
    /// Stores `entry` under `key` until its stale window ends.
    async fn put(&self, key: Key, entry: Arc<Entry>);
}

/// The in-process store: a bounded TinyLFU cache (moka), by entries or by bytes of JSON.
pub(crate) struct MemoryStore {
    entries: moka::sync::Cache<Key, Arc<Entry>>,
}

/// Evicts each entry when its stale window ends (moka's own clock; freshness itself is judged
/// on tokio's clock, so tests can pause it).
struct UntilStale;

impl moka::Expiry<Key, Arc<Entry>> for UntilStale {
    fn expire_after_create(
        &self,
        _: &Key,
        entry: &Arc<Entry>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.stale_until.saturating_duration_since(Instant::now()))
    }
}

impl MemoryStore {
    pub(crate) fn new(settings: &CacheSettings) -> Self {
        let builder = moka::sync::Cache::builder().expire_after(UntilStale);
        let entries = match settings.max_bytes {
            Some(bytes) => builder
                .weigher(|_, e: &Arc<Entry>| {
                    let size = match &e.answer {
                        Ok(v) => serde_json::to_vec(v).map_or(0, |b| b.len()),
                        Err((_, message)) => message.len(),
                    };
                    u32::try_from(size + 64).unwrap_or(u32::MAX)
                })
                .max_capacity(bytes)
                .build(),
            None => builder
                .max_capacity(
                    settings
                        .max_entries
                        .unwrap_or(CacheSettings::DEFAULT_MAX_ENTRIES),
                )
                .build(),
        };
        Self { entries }
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: Key) -> Option<Arc<Entry>> {
        self.entries
            .get(&key)
            .filter(|e| Instant::now() < e.stale_until)
    }

    async fn put(&self, key: Key, entry: Arc<Entry>) {
        self.entries.insert(key, entry);
    }
}

/// The store `settings` ask for.
pub(crate) fn store(settings: &CacheSettings) -> Result<Arc<dyn Store>, SourceError> {
    match &settings.store {
        CacheStore::Memory => Ok(Arc::new(MemoryStore::new(settings))),
        #[cfg(feature = "redis")]
        CacheStore::Redis { url } => Ok(Arc::new(super::redis::RedisStore::new(
            url.expose(),
            settings.timeout,
        )?)),
        #[cfg(not(feature = "redis"))]
        CacheStore::Redis { .. } => Err(SourceError::new(
            SourceErrorKind::Config,
            "`cache.store: redis` needs the crate feature `redis`",
        )),
        other => Err(SourceError::new(
            SourceErrorKind::Config,
            format!("cache store {other:?} is not supported by this version"),
        )),
    }
}

/// How one leading call ended, as every coalesced caller receives it.
#[derive(Debug)]
enum Landed {
    /// The source answered (or a cached failure stands).
    Answer(Result<Value, SourceError>),
    /// The source failed and an expired entry stood in; the error is the source's.
    Stale(Value, SourceError),
    /// The leading caller was cancelled: someone else must call.
    Abandoned,
}

impl Clone for Landed {
    fn clone(&self) -> Self {
        match self {
            Self::Answer(Ok(v)) => Self::Answer(Ok(v.clone())),
            Self::Answer(Err(e)) => Self::Answer(Err(e.copy())),
            Self::Stale(v, e) => Self::Stale(v.clone(), e.copy()),
            Self::Abandoned => Self::Abandoned,
        }
    }
}

/// Calls in flight by key: the first caller of a key leads (calls the source), later ones
/// wait for its answer.
#[derive(Default)]
pub(crate) struct Flights {
    calls: Mutex<HashMap<Key, watch::Receiver<Option<Landed>>>>,
}

impl fmt::Debug for Flights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

enum Role<'a> {
    Lead(Lead<'a>),
    Follow(watch::Receiver<Option<Landed>>),
}

/// The leading call of a key. Dropped without landing (its caller was cancelled), it tells
/// the followers to call again.
struct Lead<'a> {
    flights: &'a Flights,
    key: Key,
    tx: Option<watch::Sender<Option<Landed>>>,
}

impl Flights {
    fn join(&self, key: Key) -> Role<'_> {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = calls.get(&key) {
            return Role::Follow(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        calls.insert(key, rx);
        Role::Lead(Lead {
            flights: self,
            key,
            tx: Some(tx),
        })
    }
}

impl Lead<'_> {
    /// Hands `landed` to the callers waiting for it (a copy only when there are any).
    fn land(mut self, landed: &Landed) {
        self.finish(|| landed.clone());
    }

    fn finish(&mut self, landed: impl FnOnce() -> Landed) {
        if let Some(tx) = self.tx.take() {
            // The map's receiver goes here: what remains are the waiters'.
            drop(
                self.flights
                    .calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&self.key),
            );
            if tx.receiver_count() > 0 {
                tx.send_replace(Some(landed()));
            }
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.finish(|| Landed::Abandoned);
    }
}

/// The cache around one step's source (see the [module](self)).
pub(crate) struct CacheLayer {
    pub(crate) inner: Arc<dyn DataSource>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) definition: Key,
    /// The relayed request headers whose values key the answers too.
    pub(crate) vary: Arc<[String]>,
    pub(crate) ttl: Duration,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) error_ttl: Option<Duration>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("ttl", &self.ttl)
            .field("stale_if_error", &self.stale_if_error)
            .field("error_ttl", &self.error_ttl)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// What the leading call lands: the source's answer, stored; or, when it fails, a stale
    /// entry or the error (stored with `error_ttl`).
    async fn lead(&self, call: SourceCall<'_>, key: Key, stale: Option<Arc<Entry>>) -> Landed {
        let result = self.inner.fetch(call).await;
        let now = Instant::now();
        let keep = |ttl: Duration| {
            let fresh_until = after(now, ttl);
            let stale_until = after(fresh_until, self.stale_if_error.unwrap_or_default());
            (fresh_until, stale_until)
        };
        match result {
            Ok(value) => {
                let (fresh_until, stale_until) = keep(self.ttl);
                let entry = Entry {
                    answer: Ok(value.clone()),
                    fresh_until,
                    stale_until,
                };
                self.store.put(key, Arc::new(entry)).await;
                Landed::Answer(Ok(value))
            }
            Err(error) => {
                if let Some(Entry {
                    answer: Ok(value), ..
                }) = stale.as_deref()
                {
                    return Landed::Stale(value.clone(), error);
                }
                if let Some(ttl) = self.error_ttl {
                    let fresh_until = after(now, ttl);
                    let entry = Entry {
                        answer: Err((error.kind, error.message.clone())),
                        fresh_until,
                        stale_until: fresh_until,
                    };
                    self.store.put(key, Arc::new(entry)).await;
                }
                Landed::Answer(Err(error))
            }
        }
    }
}

#[async_trait::async_trait]
impl DataSource for CacheLayer {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let key = key(self.definition, call.params, &self.vary, call.request);
        let (landed, status) = loop {
            let cached = self.store.get(key).await;
            if let Some(entry) = &cached
                && Instant::now() < entry.fresh_until
            {
                let answer = match &entry.answer {
                    Ok(v) => Ok(v.clone()),
                    Err((kind, message)) => Err(SourceError::new(
                        *kind,
                        format!("{message} (a cached failure)"),
                    )),
                };
                break (Landed::Answer(answer), CacheStatus::Hit);
            }
            match self.flights.join(key) {
                Role::Lead(lead) => {
                    let landed = self.lead(call, key, cached).await;
                    lead.land(&landed);
                    break (landed, CacheStatus::Miss);
                }
                Role::Follow(mut rx) => {
                    // `changed` fails only if the leader vanished without landing, which its
                    // drop prevents; either way, look again.
                    let _ = rx.changed().await;
                    let landed = rx.borrow().clone();
                    match landed {
                        Some(Landed::Abandoned) | None => continue,
                        Some(landed) => break (landed, CacheStatus::Coalesced),
                    }
                }
            }
        };
        let status = match &landed {
            Landed::Stale(..) => CacheStatus::Stale,
            _ => status,
        };
        call.record.set_cache(status);
        tracing::Span::current().record("cache", status.as_str());
        #[cfg(feature = "otel")]
        crate::telemetry::otel::event("cache", || {
            vec![opentelemetry::KeyValue::new(
                "orchestrator.cache",
                status.as_str(),
            )]
        });
        match landed {
            Landed::Answer(answer) => answer,
            Landed::Stale(value, error) => {
                call.record.recover(Recovery::Stale, error);
                Ok(value)
            }
            // Retried in the loop above; never gets here.
            Landed::Abandoned => Err(SourceError::new(
                SourceErrorKind::Internal,
                "a coalesced call was abandoned",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key_of(v: Value) -> Key {
        let request = crate::RequestContext::new();
        key(
            definition_hash("api|op"),
            v.as_object().expect("an object"),
            &[],
            &request,
        )
    }

    #[test]
    fn keys_are_canonical_and_distinguish_values_and_types() {
        assert_eq!(
            key_of(json!({"a": 1, "b": {"x": [1, "2"], "y": null}})),
            key_of(json!({"b": {"y": null, "x": [1, "2"]}, "a": 1}))
        );
        assert_ne!(key_of(json!({"a": 1})), key_of(json!({"a": "1"})));
        assert_ne!(key_of(json!({"a": [1, 2]})), key_of(json!({"a": [[1], 2]})));
        assert_ne!(key_of(json!({"ab": ""})), key_of(json!({"a": "b"})));
        let none = crate::RequestContext::new();
        let empty = serde_json::Map::new();
        assert_ne!(
            key(definition_hash("api|op"), &empty, &[], &none),
            key(definition_hash("api|other"), &empty, &[], &none)
        );
    }

    /// A relayed header keys the answers: two callers' tokens never share an entry, one
    /// caller's calls do, and a header the step does not relay changes nothing.
    #[test]
    fn relayed_headers_key_the_answers() {
        let vary = ["authorization".to_owned(), "x-tenant".to_owned()];
        let params = serde_json::Map::new();
        let k = |r: &crate::RequestContext| key(definition_hash("api|op"), &params, &vary, r);
        let ada = crate::RequestContext::new().with_credential("Authorization", "Bearer ada");
        let bob = crate::RequestContext::new().with_credential("Authorization", "Bearer bob");
        assert_ne!(k(&ada), k(&bob));
        assert_ne!(k(&ada), k(&crate::RequestContext::new()));
        assert_eq!(k(&ada), k(&ada.clone().with_header("x-other", "1")));
        assert_ne!(k(&ada), k(&ada.clone().with_header("x-tenant", "acme")));
        let unrelayed = |r: &crate::RequestContext| key(definition_hash("api|op"), &params, &[], r);
        assert_eq!(unrelayed(&ada), unrelayed(&bob));
    }
}
