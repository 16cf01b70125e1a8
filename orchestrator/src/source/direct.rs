//! The built-in `direct` source: no I/O, returns its resolved params.

use serde_json::Value;

use super::{DataSource, SourceCall, SourceError};

/// Returns its resolved params as an object. Useful for request shaping and for feeding later
/// sources computed values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

#[async_trait::async_trait]
impl DataSource for Direct {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        Ok(Value::Object(call.params.clone()))
    }
}
