//! `cache.store: redis`: entries in a Redis server that every replica shares.
//!
//! Redis is an optimisation, never a dependency of an answer: each command has the cache's
//! `timeout`, and when Redis is unreachable or slow the call goes to the source. The first
//! failure of an outage logs one warning; while it lasts, calls skip Redis and one of them
//! tries to reconnect at most once a second; the first success logs that Redis is back.
//!
//! A value is `AOC` and a format version byte, the fresh-until and stale-until times (Unix
//! milliseconds, big-endian), then the answer as JSON: `{"ok": …}` or
//! `{"error": [kind, status, message]}`. A value of another format version is a miss, so a
//! rolling upgrade never misreads what another version wrote.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::cache::{Entry, Key, Store};
use crate::source::{SourceError, SourceErrorKind};

/// The format of the values this version writes.
const MAGIC: &[u8; 4] = b"AOC\x01";
const HEADER: usize = MAGIC.len() + 16;
/// How long an outage waits between reconnection attempts.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    timeout: Duration,
    link: Mutex<Link>,
}

enum Link {
    /// Not connected yet: the first call connects.
    Idle,
    Up(MultiplexedConnection),
    /// Unreachable; the next reconnection attempt is due then (unless one is running).
    Down {
        retry_at: Instant,
        connecting: bool,
    },
}

impl RedisStore {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, SourceError> {
        // The URL may carry a password: the error names neither.
        let client = redis::Client::open(url).map_err(|e| {
            SourceError::new(
                SourceErrorKind::Config,
                format!("the Redis URL of `cache.url` is not valid ({:?})", e.kind()),
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                timeout,
                link: Mutex::new(Link::Idle),
            }),
        })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection when Redis is up; `None` during an outage (starting a reconnection
    /// attempt when one is due).
    async fn connection(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        let first = {
            let mut link = self.lock();
            match &mut *link {
                Link::Up(conn) => return Some(conn.clone()),
                Link::Down {
                    retry_at,
                    connecting,
                } => {
                    if *connecting || Instant::now() < *retry_at {
                        return None;
                    }
                    *connecting = true;
                    false
                }
                Link::Idle => {
                    *link = Link::Down {
                        retry_at: Instant::now(),
                        connecting: true,
                    };
                    true
                }
            }
        };
        if first {
            // The first call waits for the connection, so a fresh process uses the cache at
            // once; later reconnections run beside the calls.
            return self.connect(true).await;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.connect(false).await;
        });
        None
    }

    /// Connects; `first` (no outage known yet) logs a failure.
    async fn connect(&self, first: bool) -> Option<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connected = tokio::time::timeout(
            self.timeout.saturating_mul(2),
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await;
        let mut link = self.lock();
        match connected {
            Ok(Ok(conn)) => {
                if !first {
                    tracing::info!("the Redis cache is back: cached answers are shared again");
                }
                *link = Link::Up(conn.clone());
                Some(conn)
            }
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => format!("{:?}", e.kind()),
                    _ => "timed out".into(),
                };
                if first {
                    tracing::warn!(%reason, "the Redis cache is unreachable: calls go to their sources until it is back");
                }
                *link = Link::Down {
                    retry_at: Instant::now() + RECONNECT_EVERY,
                    connecting: false,
                };
                None
            }
        }
    }

    /// Records a failed command: a connection problem starts an outage (one warning).
    fn failed(&self, error: Option<&redis::RedisError>) {
        let outage = error.is_none_or(|e| {
            e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
        });
        if !outage {
            return;
        }
        let mut link = self.lock();
        if matches!(*link, Link::Up(_)) {
            let reason =
                error.map_or_else(|| "timed out".to_owned(), |e| format!("{:?}", e.kind()));
            tracing::warn!(%reason, "the Redis cache failed: calls go to their sources until it is back");
            *link = Link::Down {
                retry_at: Instant::now() + RECONNECT_EVERY,
                connecting: false,
            };
        }
    }

    /// Runs `command` within the timeout; a failure is a miss (and may start an outage).
    async fn run<T>(&self, command: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(Some(&e));
                None
            }
            Err(_) => {
                self.failed(None);
                None
            }
        }
    }
}

fn redis_key(key: Key) -> String {
    format!("api-orchestrator:cache:{key:032x}")
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn encode(entry: &Entry) -> (Vec<u8>, Duration) {
    let (now, wall) = (Instant::now(), unix_ms_now());
    let ms =
        |at: Instant| wall.saturating_add(at.saturating_duration_since(now).as_millis() as u64);
    let answer = match &entry.answer {
        Ok(v) => json!({ "ok": v }),
        Err((kind, message)) => {
            let (name, status) = kind_code(*kind);
            json!({ "error": [name, status, message] })
        }
    };
    let mut out = Vec::with_capacity(HEADER + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&ms(entry.fresh_until).to_be_bytes());
    out.extend_from_slice(&ms(entry.stale_until).to_be_bytes());
    serde_json::to_writer(&mut out, &answer).unwrap_or_default();
    (out, entry.stale_until.saturating_duration_since(now))
}

fn decode(bytes: &[u8]) -> Option<Entry> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (times, json) = rest.split_at_checked(16)?;
    let fresh = u64::from_be_bytes(times[..8].try_into().ok()?);
    let stale = u64::from_be_bytes(times[8..].try_into().ok()?);
    let (now, wall) = (Instant::now(), unix_ms_now());
    // Times come from another process: out of range they saturate, never panic.
    let at = |ms: u64| super::after(now, Duration::from_millis(ms.saturating_sub(wall)));
    let mut doc: Value = serde_json::from_slice(json).ok()?;
    let answer = if let Some(v) = doc.get_mut("ok") {
        Ok(v.take())
    } else {
        let e = doc.get("error")?.as_array()?;
        let kind = kind_of(e.first()?.as_str()?, e.get(1)?.as_u64()?)?;
        Err((kind, e.get(2)?.as_str()?.to_owned()))
    };
    Some(Entry {
        answer,
        fresh_until: at(fresh),
        stale_until: at(stale),
    })
}

fn kind_code(kind: SourceErrorKind) -> (&'static str, u16) {
    match kind {
        SourceErrorKind::Timeout => ("timeout", 0),
        SourceErrorKind::Unavailable => ("unavailable", 0),
        SourceErrorKind::Upstream { status } => ("upstream", status),
        SourceErrorKind::InvalidResponse => ("invalid_response", 0),
        SourceErrorKind::Rejected => ("rejected", 0),
        SourceErrorKind::Config => ("config", 0),
        _ => ("internal", 0),
    }
}

fn kind_of(name: &str, status: u64) -> Option<SourceErrorKind> {
    Some(match name {
        "timeout" => SourceErrorKind::Timeout,
        "unavailable" => SourceErrorKind::Unavailable,
        "upstream" => SourceErrorKind::Upstream {
            status: u16::try_from(status).ok()?,
        },
        "invalid_response" => SourceErrorKind::InvalidResponse,
        "rejected" => SourceErrorKind::Rejected,
        "config" => SourceErrorKind::Config,
        "internal" => SourceErrorKind::Internal,
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn get(&self, key: Key) -> Option<Arc<Entry>> {
        let mut conn = self.inner.connection().await?;
        let key = redis_key(key);
        let bytes: Option<Vec<u8>> = self.inner.run(conn.get(&key)).await?;
        let entry = decode(&bytes?)?;
        (Instant::now() < entry.stale_until).then(|| Arc::new(entry))
    }

    async fn put(&self, key: Key, entry: Arc<Entry>) {
        let Some(mut conn) = self.inner.connection().await else {
            return;
        };
        let (bytes, keep) = encode(&entry);
        let ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return;
        }
        // The answer does not wait for the write.
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let set = conn.pset_ex::<_, _, ()>(redis_key(key), bytes, ms);
            inner.run(set).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_other_formats_are_misses() {
        let now = Instant::now();
        let entry = Entry {
            answer: Ok(json!({"score": 712})),
            fresh_until: now + Duration::from_secs(30),
            stale_until: now + Duration::from_secs(90),
        };
        let (bytes, keep) = encode(&entry);
        assert!(keep > Duration::from_secs(89));
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back.answer.as_ref().ok(), Some(&json!({"score": 712})));
        assert!(back.fresh_until > now + Duration::from_secs(29));
        let error = Entry {
            answer: Err((
                SourceErrorKind::Upstream { status: 404 },
                "no such id".into(),
            )),
            fresh_until: now + Duration::from_secs(5),
            stale_until: now + Duration::from_secs(5),
        };
        let back = decode(&encode(&error).0).expect("decodes");
        assert_eq!(
            back.answer.err(),
            Some((
                SourceErrorKind::Upstream { status: 404 },
                "no such id".into()
            ))
        );
        let mut other = bytes.clone();
        other[3] = 2;
        assert!(decode(&other).is_none());
        assert!(decode(b"AOC").is_none());
        assert!(decode(b"{\"ok\": 1}").is_none());
    }
}
