//! The request context expressions read through `$request`.

use serde_json::{Map, Value};

/// The inputs of one execution: path params, query params, JSON body and headers.
///
/// HTTP integrations build it from the incoming request; code calling the engine directly builds
/// it with the `with_*` methods.
///
/// ```
/// use api_orchestrator_core::RequestContext;
///
/// let request = RequestContext::new()
///     .with_path_param("customer_id", 42)
///     .with_query_param("limit", "10")
///     .with_header("X-Tenant", "acme");
/// assert_eq!(request.lookup("customer_id"), Some(&42.into()));
/// assert_eq!(request.headers["x-tenant"], "acme");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestContext {
    /// Captured route segments.
    pub path_params: Map<String, Value>,
    /// Query parameters; a repeated key holds an array of its values.
    pub query_params: Map<String, Value>,
    /// The JSON body, or null.
    pub body: Value,
    /// Headers, keyed by lower-case name.
    pub headers: Map<String, Value>,
    /// The request id (from `x-request-id` or generated), recorded in the trace.
    pub request_id: String,
    /// The client's address, when the host passes it (for `rate_limit` keyed by client).
    pub client: Option<std::net::IpAddr>,
    /// The verified claims of the caller's bearer token (`$request.auth`), when `auth:` is on.
    pub auth: Map<String, Value>,
    /// What the host attached to the request (`$request.context.<name>`): the values of its
    /// `web::HostContext`, and the captures of the prefix it mounted the plans at.
    pub context: Map<String, Value>,
    /// The credential headers of the incoming request, which `headers` leaves out: sent
    /// upstream only by a service that lists them in `forward_headers`.
    pub credentials: Credentials,
}

/// The credential headers of a request (`authorization`, `proxy-authorization`, `cookie`):
/// no expression reads them and `Debug` prints only their names; an HTTP service relays the
/// ones its `forward_headers` lists.
#[derive(Clone, Default, PartialEq)]
pub struct Credentials(Vec<(String, String)>);

impl Credentials {
    /// The header names a credential may arrive in.
    pub const HEADERS: [&'static str; 3] = ["authorization", "proxy-authorization", "cookie"];

    /// Keeps `value` for header `name` (stored lower-case), replacing an earlier one.
    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        let name = name.to_ascii_lowercase();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Adds the cookies of one `cookie` field to those already kept, joined by `; ` (a
    /// request may split them over several fields).
    pub fn append_cookie(&mut self, cookies: &str) {
        match self.0.iter_mut().find(|(n, _)| n == "cookie") {
            Some((_, kept)) if !kept.is_empty() => {
                kept.push_str("; ");
                kept.push_str(cookies);
            }
            Some((_, kept)) => cookies.clone_into(kept),
            None => self.0.push(("cookie".to_owned(), cookies.to_owned())),
        }
    }

    /// The value of header `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(n, _)| (n, "<redacted>")))
            .finish()
    }
}

impl RequestContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a path param.
    pub fn with_path_param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.path_params.insert(name.into(), value.into());
        self
    }

    /// Adds a query param; a second value for the same key turns it into an array.
    pub fn with_query_param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let value = value.into();
        match self.query_params.entry(name.into()) {
            serde_json::map::Entry::Vacant(e) => {
                e.insert(value);
            }
            serde_json::map::Entry::Occupied(mut e) => match e.get_mut() {
                Value::Array(items) => items.push(value),
                old => {
                    let first = old.take();
                    *old = Value::Array(vec![first, value]);
                }
            },
        }
        self
    }

    /// Sets the JSON body.
    pub fn with_body(mut self, body: impl Into<Value>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a header (the name is stored lower-case).
    pub fn with_header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    /// Sets the client's address.
    pub fn with_client(mut self, addr: std::net::IpAddr) -> Self {
        self.client = Some(addr);
        self
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = id.into();
        self
    }

    /// Sets the verified claims of the caller's token (`$request.auth`).
    pub fn with_auth(mut self, claims: Map<String, Value>) -> Self {
        self.auth = claims;
        self
    }

    /// Adds a credential header (see [`Credentials`]).
    pub fn with_credential(mut self, name: &str, value: impl Into<String>) -> Self {
        self.credentials.insert(name, value);
        self
    }

    /// Adds a host context value (`$request.context.<name>`).
    pub fn with_context(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.context.insert(name.into(), value.into());
        self
    }

    /// `$request` alone: `{path_params, query_params, body}`, as the original service passed
    /// its request to a source.
    pub fn whole(&self) -> Value {
        let mut m = Map::with_capacity(3);
        m.insert(
            "path_params".into(),
            Value::Object(self.path_params.clone()),
        );
        m.insert(
            "query_params".into(),
            Value::Object(self.query_params.clone()),
        );
        // A request without a body has `body: {}`, as the original service passed it.
        let body = match &self.body {
            Value::Null => Value::Object(Map::new()),
            other => other.clone(),
        };
        m.insert("body".into(), body);
        Value::Object(m)
    }

    /// The shorthand lookup behind `$request.name`: path param, then query param, then body field.
    pub fn lookup(&self, name: &str) -> Option<&Value> {
        use crate::expr::field;
        field(&self.path_params, name)
            .or_else(|| field(&self.query_params, name))
            .or_else(|| self.body.as_object().and_then(|body| field(body, name)))
    }
}
