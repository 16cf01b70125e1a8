//! [`Orchestrator`]: the entry point for running plans without any HTTP framework.

use std::path::Path;
use std::sync::Arc;

use crate::RequestContext;
use crate::config::{LoadError, Loader};
use crate::engine::{BuildError, Engine, ExecuteError, Execution};
use crate::plan::Plan;
use crate::source::{DataSource, Registry, SourceFactory};

/// Why an [`Orchestrator`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config directory could not be read or is invalid.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The plan could not be built (an unregistered source type, a client that failed to build).
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Loads plans and executes their endpoints.
///
/// ```
/// use orchestrator::{Orchestrator, RequestContext};
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
#[derive(Debug, Clone)]
pub struct Orchestrator {
    engine: Arc<Engine>,
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

    /// Executes endpoint `endpoint`.
    pub async fn execute(
        &self,
        endpoint: &str,
        request: RequestContext,
    ) -> Result<Execution, ExecuteError> {
        self.engine.execute(endpoint, &request).await
    }

    /// The plan being served.
    pub fn plan(&self) -> &Plan {
        self.engine.plan()
    }

    /// The compiled engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// Configures an [`Orchestrator`].
#[derive(Debug, Default)]
pub struct OrchestratorBuilder {
    registry: Registry,
    loader: Loader,
}

impl OrchestratorBuilder {
    /// Registers a host source type with one shared source.
    #[must_use]
    pub fn register(mut self, kind: &str, source: impl DataSource) -> Self {
        self.registry.register(kind, source);
        self.loader = self.loader.with_source_type(kind);
        self
    }

    /// Registers a host source type with a factory called per config version and domain.
    #[must_use]
    pub fn register_factory(mut self, kind: &str, factory: impl SourceFactory) -> Self {
        self.registry.register_factory(kind, factory);
        self.loader = self.loader.with_source_type(kind);
        self
    }

    /// Looks `${env:NAME}` references up with `lookup` instead of the process environment.
    #[must_use]
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.loader = self.loader.with_env(lookup);
        self
    }

    /// Loads and validates a config directory, then builds it.
    pub fn load_dir(self, dir: impl AsRef<Path>) -> Result<Orchestrator, Error> {
        let plan = self.loader.load_dir(dir)?;
        Ok(self.build(plan)?)
    }

    /// Builds an already-loaded plan (from the macro, or assembled in code).
    pub fn build(self, plan: Plan) -> Result<Orchestrator, BuildError> {
        Ok(Orchestrator {
            engine: Arc::new(Engine::new(plan, &self.registry, 1)?),
        })
    }
}
