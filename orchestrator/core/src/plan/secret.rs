//! [`Secret`]: config text that may hold a credential.

use std::fmt;

/// Config text that may hold a credential: a connection string, a base URL, a token, an API
/// key, a password, a header value. It has no `Display`, and its `Debug` never shows it: a URL
/// appears without its password and query values ([`redact::url`](crate::redact::url)), any
/// other text as `***`. So a `Plan` can be logged with `{:?}` and shows no secret; code that
/// needs the value asks for it by name with [`Secret::expose`].
///
/// ```
/// use api_orchestrator_core::plan::Secret;
///
/// let url = Secret::new("postgres://app:hunter2@db/orders");
/// assert_eq!(format!("{url:?}"), "Secret(\"postgres://app:***@db/orders\")");
/// assert_eq!(format!("{:?}", Secret::new("Bearer abc123")), "Secret(***)");
/// assert_eq!(url.expose(), "postgres://app:hunter2@db/orders");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text itself, for the code that sends it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains("://") {
            f.debug_tuple("Secret")
                .field(&crate::redact::url(&self.0))
                .finish()
        } else {
            f.write_str("Secret(***)")
        }
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}
