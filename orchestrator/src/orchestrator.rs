//! [`Orchestrator`]: the entry point for running plans without any HTTP framework, and for
//! reloading them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::EndpointHandle;
use crate::config::{ConfigFiles, LoadError, Loader};
use crate::engine::{BuildError, Engine, ExecuteError, Execution};
use crate::layer::Layer;
use crate::plan::Plan;
use crate::source::{DataSource, Registry, SourceFactory};
use crate::validate::ValidateOptions;
use crate::{Diagnostics, ValidPlan};

/// Why an [`Orchestrator`] could not be created or reloaded.
///
/// `Debug` prints the same as `Display`: a config error shows its rendered diagnostics.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config directory could not be read or is invalid.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The plan could not be built (an unregistered source type, a client that failed to build).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The orchestrator was built from a plan, not a directory: there is nothing to re-read.
    #[error(
        "this orchestrator was built from a plan, not loaded from a directory: there is nothing to reload"
    )]
    NotReloadable,
    /// The file watcher could not start.
    /// Loading or building the plan panicked (a bug of this crate or of a host source type):
    /// the panic was caught, and a reload leaves the previous version serving.
    #[error("loading the config panicked: {0} (a bug; please report it with the config)")]
    Panicked(String),
    #[error("cannot watch `{dir}`: {message}")]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// Why.
        message: String,
    },
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// When it was attempted.
    pub at: SystemTime,
    /// The version now serving (the new one on success, the previous one on failure).
    pub version: u64,
    /// Every diagnostic (or the I/O or build error) when it failed; nothing changed then.
    pub error: Option<String>,
}

/// Loads plans and executes their endpoints.
///
/// ```
/// use api_orchestrator::{Orchestrator, RequestContext};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/valid/direct");
/// let orchestrator = Orchestrator::from_dir(dir)?;
/// let request = RequestContext::new().with_path_param("name", "Ada");
/// let out = orchestrator.execute("greet", request).await?;
/// assert_eq!(out.response["greeting"], "Hello, Ada!");
/// assert_eq!(out.trace.sources.len(), 1);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

/// What the clones of an [`Orchestrator`] share.
struct Inner {
    current: ArcSwap<Engine>,
    /// Set when loaded from a directory: what a reload needs.
    source: Option<Source>,
    versions: AtomicU64,
    last_reload: Mutex<Option<ReloadReport>>,
    /// One reload at a time.
    reloading: Mutex<()>,
}

struct Source {
    dir: PathBuf,
    loader: Loader,
    registry: Registry,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("version", &self.version())
            .field("dir", &self.inner.source.as_ref().map(|s| &s.dir))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Orchestrator {
    /// Loads `dir` with the built-in source types and builds it.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, Error> {
        Self::builder().load_dir(dir)
    }

    /// A builder, to register source types or set the environment lookup first.
    pub fn builder() -> OrchestratorBuilder {
        OrchestratorBuilder::default()
    }

    fn new(engine: Engine, source: Option<Source>) -> Self {
        let version = engine.version();
        #[cfg(feature = "metrics")]
        if let Some(m) = &engine.instruments().metrics {
            m.serving(version);
        }
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(engine),
                source,
                versions: AtomicU64::new(version),
                last_reload: Mutex::new(None),
                reloading: Mutex::new(()),
            }),
        }
    }

    /// Executes `endpoint` on the version current now; a reload meanwhile does not affect
    /// it. `endpoint` is a name (`"get_customer_360"`, with a [`RequestContext`](crate::RequestContext)) or a typed
    /// handle of `orchestrate!`'s `mod` form (`shop::endpoints::price`, with the input struct
    /// its `input:` declares): see [`EndpointHandle`].
    pub async fn execute<E: EndpointHandle>(
        &self,
        endpoint: E,
        request: E::Input,
    ) -> Result<Execution, ExecuteError> {
        self.engine()
            .execute(endpoint.name(), &request.into())
            .await
    }

    /// The plan being served now.
    pub fn plan(&self) -> Arc<Plan> {
        self.engine().shared_plan()
    }

    /// The engine being served now (hold it to keep using one version).
    pub fn engine(&self) -> Arc<Engine> {
        self.inner.current.load_full()
    }

    /// The config version being served (1 at start, +1 per successful reload).
    pub fn version(&self) -> u64 {
        self.inner.current.load().version()
    }

    /// Re-reads and validates the whole config directory, builds what the new version needs
    /// (SQL pools whose settings did not change are reused), then swaps it in; requests already
    /// running finish on the version they started with. A config that fails changes nothing:
    /// the error (every diagnostic) is returned, logged and kept for [`Self::last_reload`].
    pub fn reload(&self) -> Result<u64, Error> {
        let source = self.inner.source.as_ref().ok_or(Error::NotReloadable)?;
        let _one_at_a_time = self
            .inner
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let version = self.inner.versions.load(Ordering::SeqCst) + 1;
        let result = caught(|| {
            let plan = source.loader.load_dir(&source.dir)?;
            Ok(Engine::new(plan, &source.registry, version)?)
        });
        let report = |error: Option<String>| ReloadReport {
            at: SystemTime::now(),
            version: self.version(),
            error,
        };
        #[cfg(feature = "metrics")]
        if let Some(m) = &source.registry.instruments().metrics {
            m.reload(result.is_ok().then_some(version));
        }
        let outcome = match result {
            Ok(engine) => {
                self.inner.versions.store(version, Ordering::SeqCst);
                self.inner.current.store(Arc::new(engine));
                tracing::info!(dir = %source.dir.display(), version, "config reloaded");
                Ok(version)
            }
            Err(e) => {
                tracing::error!(dir = %source.dir.display(), error = %e, "reload failed; the previous version keeps serving");
                Err(e)
            }
        };
        let r = report(outcome.as_ref().err().map(ToString::to_string));
        *self
            .inner
            .last_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
        outcome
    }

    /// The outcome of the last reload attempt, if there was one.
    pub fn last_reload(&self) -> Option<ReloadReport> {
        self.inner
            .last_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The directory a reload re-reads, when loaded from one.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.source.as_ref().map(|s| s.dir.as_path())
    }

    /// Reloads whenever a YAML file of the config directory or its schema snapshot
    /// (`.orchestrator/schema.json`) is created, changed or removed, once the changes have
    /// been quiet for `debounce` (an editor's save is several events).
    /// Watching stops when the returned [`Watcher`] is dropped. Outcomes are logged and kept
    /// for [`Self::last_reload`]. On Linux, a reload also waits (up to 5 s) until every YAML
    /// file opened for writing is closed again: a file written in several steps is never
    /// published half-written.
    ///
    /// The directory may be replaced as a whole: deleted and created again, or swapped
    /// atomically when it is a symlink (`ln -s v2 cur.tmp && mv -T cur.tmp cur`), or through
    /// the `..data` symlink of a Kubernetes ConfigMap volume. The watcher also watches the
    /// directory's parent, and watches the directory anew after such a swap.
    #[cfg(feature = "reload")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reload")))]
    pub fn watch(&self, debounce: std::time::Duration) -> Result<Watcher, Error> {
        use notify::RecursiveMode;
        let dir = self.dir().ok_or(Error::NotReloadable)?;
        // Absolute, with symlinks kept: a swapped symlink must be seen as the same path.
        let dir = std::path::absolute(dir).map_err(|e| Error::Watch {
            dir: dir.to_owned(),
            message: e.to_string(),
        })?;
        let watch_error = |e: notify::Error| Error::Watch {
            dir: dir.clone(),
            message: e.to_string(),
        };
        let (events, received) = std::sync::mpsc::channel();
        let mut debouncer =
            notify_debouncer_full::new_debouncer(debounce, None, events).map_err(watch_error)?;
        debouncer
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(watch_error)?;
        // The parent sees the directory itself replaced (its own watch follows the old inode).
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = debouncer.watch(parent, RecursiveMode::NonRecursive);
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let me = self.clone();
        let thread = std::thread::Builder::new()
            .name("orchestrator-watch".into())
            .spawn({
                let stop = stop.clone();
                move || watch_loop(&me, &dir, &mut debouncer, &received, &stop)
            })
            .map_err(|e| Error::Watch {
                dir: self.dir().unwrap_or(Path::new("")).to_owned(),
                message: e.to_string(),
            })?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

/// How long a reload waits for a YAML file that is still open for writing (Linux reports when
/// a writer closes a file): a writer that keeps a file open longer is not waited for.
#[cfg(feature = "reload")]
const OPEN_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the watcher thread does until told to stop: reload on relevant events, and watch the
/// directory anew when it was replaced.
///
/// A file written in several steps can be valid YAML halfway (an editor or `cat > file` that
/// pauses longer than the debounce): where the platform reports closes (Linux), a reload waits
/// until every YAML file opened for writing has been closed again, or for [`OPEN_WRITE_WAIT`].
#[cfg(feature = "reload")]
fn watch_loop(
    orchestrator: &Orchestrator,
    dir: &Path,
    debouncer: &mut notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    received: &std::sync::mpsc::Receiver<notify_debouncer_full::DebounceEventResult>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
    use notify::{EventKind, RecursiveMode};
    use std::time::Instant;
    const REPORTS_CLOSE: bool = cfg!(any(target_os = "linux", target_os = "android"));
    let name = dir.file_name();
    // The files a load reads: the YAML files and the schema snapshot (`prepare` rewrites it).
    let snapshot = dir.join(crate::snapshot::SNAPSHOT_FILE);
    let is_yaml = |p: &Path| {
        p.starts_with(dir)
            && (matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
                || p == snapshot)
    };
    // Config files opened for writing and not closed yet, with when that was first seen.
    let mut writing: std::collections::HashMap<PathBuf, Instant> = Default::default();
    let mut pending = false;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let events = match received.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(Ok(events)) => events,
            Ok(Err(errors)) => {
                for e in errors {
                    tracing::warn!(error = %e, "config watcher error");
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Vec::new(),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut replaced = false;
        for e in &events {
            match e.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                    for p in &e.paths {
                        writing.remove(p);
                    }
                    continue;
                }
                EventKind::Access(_) => continue,
                EventKind::Create(CreateKind::File | CreateKind::Any)
                | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
                    if REPORTS_CLOSE =>
                {
                    for p in e.paths.iter().filter(|p| is_yaml(p)) {
                        writing.entry(p.clone()).or_insert_with(Instant::now);
                    }
                }
                EventKind::Remove(_) => {
                    for p in &e.paths {
                        writing.remove(p);
                    }
                }
                _ => {}
            }
            for p in &e.paths {
                // The directory itself (seen from its parent), or a Kubernetes `..data` swap.
                if p.parent() == dir.parent() && p.file_name() == name {
                    replaced = true;
                }
                let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
                pending |= replaced
                    || file.starts_with("..") && p.starts_with(dir)
                    || is_yaml(p)
                    || matches!(e.kind, EventKind::Remove(_))
                        && p.extension().is_none()
                        && p.starts_with(dir);
            }
        }
        if replaced {
            writing.clear();
            let _ = debouncer.unwatch(dir);
            if let Err(e) = debouncer.watch(dir, RecursiveMode::Recursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "the config directory is gone; watching for it to come back");
            }
        }
        writing.retain(|_, since| since.elapsed() < OPEN_WRITE_WAIT);
        if pending && writing.is_empty() {
            pending = false;
            let _ = orchestrator.reload();
        }
    }
}

/// Keeps an [`Orchestrator::watch`] running; dropping it stops watching.
#[cfg(feature = "reload")]
#[cfg_attr(docsrs, doc(cfg(feature = "reload")))]
pub struct Watcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(feature = "reload")]
impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(feature = "reload")]
impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

/// Configures an [`Orchestrator`].
#[derive(Debug, Default)]
pub struct OrchestratorBuilder {
    registry: Registry,
    loader: Loader,
}

impl OrchestratorBuilder {
    /// Registers a host source type with one inner source.
    #[must_use]
    pub fn register(mut self, kind: &str, source: impl DataSource) -> Self {
        self.registry.register(kind, source);
        self.loader = self.loader.with_source_type(kind);
        self
    }

    /// Registers a host source type with a factory called per config version and domain.
    /// When the factory declares an integration file
    /// ([`SourceFactory::integration`]), the loader reads and checks
    /// `integrations/<kind>.yaml` for it.
    #[must_use]
    pub fn register_factory(mut self, kind: &str, factory: impl SourceFactory) -> Self {
        // The file is named after the kind registered, whatever the factory called it.
        self.loader = match factory.integration() {
            Some(file) => self.loader.with_integration(file.with_kind(kind)),
            None => self.loader.with_source_type(kind),
        };
        self.registry.register_factory(kind, factory);
        self
    }

    /// Adds a host layer around every step's source: a cache, a circuit breaker, a
    /// concurrency limit, metrics (see [`layer`](crate::layer) for where it sits among the
    /// plan's policies). The first added is the outermost.
    #[must_use]
    pub fn layer(mut self, layer: impl Layer) -> Self {
        self.registry.layer(layer);
        self
    }

    /// Exports OpenTelemetry spans with `tracer`: one per request (server), per source call
    /// and per attempt (client), as `api_orchestrator::docs::operating` lists them. Build the
    /// tracer with [`telemetry::Tracing`](crate::telemetry::Tracing), or take it from the host's
    /// own provider.
    #[cfg(feature = "otel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
    #[must_use]
    pub fn tracer(mut self, tracer: crate::telemetry::SdkTracer) -> Self {
        self.registry.tracer(tracer);
        self
    }

    /// Records Prometheus metrics in `metrics` (several orchestrators may share one); serve
    /// them with [`Metrics::render`](crate::telemetry::Metrics::render).
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[must_use]
    pub fn metrics(mut self, metrics: &crate::telemetry::Metrics) -> Self {
        self.registry.metrics(metrics);
        self
    }

    /// Looks `${env:NAME}` references up with `lookup` instead of the process environment.
    #[must_use]
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.loader = self.loader.with_env(lookup);
        self
    }

    /// Loads and validates a config directory, then builds it. The orchestrator can
    /// [`reload`](Orchestrator::reload) the directory later.
    pub fn load_dir(self, dir: impl AsRef<Path>) -> Result<Orchestrator, Error> {
        let dir = dir.as_ref().to_owned();
        let engine = caught(|| {
            let plan = self.loader.load_dir(&dir)?;
            Ok(Engine::new(plan, &self.registry, 1)?)
        })?;
        Ok(Orchestrator::new(
            engine,
            Some(Source {
                dir,
                loader: self.loader,
                registry: self.registry,
            }),
        ))
    }

    /// Validates a plan assembled in code, accepting the source types registered so far.
    pub fn validate(&self, plan: Plan) -> Result<ValidPlan, Diagnostics> {
        let options = self.registry.kinds().into_iter().fold(
            ValidateOptions::default(),
            ValidateOptions::with_source_type,
        );
        ValidPlan::new(plan, &options)
    }

    /// Builds a valid plan: from `orchestrate!` (checked at compile time), from
    /// [`Loader`](crate::config::Loader), or from [`validate`](Self::validate).
    ///
    /// A plan of `orchestrate!` whose config uses `${env:…}` (or relative SQLite paths) has
    /// its settings and integrations read again here, with this builder's environment
    /// ([`env`](Self::env), the process's by default): the values are the start-up's, not the
    /// compiler's. A config that does not load then is [`BuildError::StartUp`].
    pub fn build(self, plan: ValidPlan) -> Result<Orchestrator, BuildError> {
        let plan = self.at_start_up(plan)?;
        Ok(Orchestrator::new(
            Engine::new(plan, &self.registry, 1)?,
            None,
        ))
    }

    /// `compiled` with the settings and integrations of its start-up config read now (as it
    /// is without one).
    fn at_start_up(&self, compiled: ValidPlan) -> Result<ValidPlan, BuildError> {
        let Some(config) = compiled.start_up_config() else {
            return Ok(compiled);
        };
        let base = if config.base_dir.is_dir() {
            &config.base_dir
        } else {
            &config.compiled_dir
        };
        let files = config.files.iter().fold(
            ConfigFiles::new().with_base_dir(base),
            |files, (rel, text)| files.with_file(rel.as_str(), text.as_str()),
        );
        let now = self
            .loader
            .load(&files)
            .map_err(|e| BuildError::StartUp(e.to_string()))?
            .into_plan();
        let mut plan = compiled.into_plan();
        plan.settings = now.settings;
        plan.integrations = now.integrations;
        self.validate(plan)
            .map_err(|d| BuildError::StartUp(d.to_string()))
    }
}

/// Runs `load`, turning a panic into [`Error::Panicked`]: a config edit (or a host source
/// type's factory) must not take the process or the watcher thread down.
fn caught<T>(load: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Err(Error::Panicked(message))
    })
}
