//! Route templates (`/customers/{customer_id}/orders`) and the default routes of an endpoint.

use std::collections::BTreeSet;
use std::fmt;

use super::{Endpoint, HttpMethod};
use crate::expr::{RequestPart, Root};

/// A validated route template: literal segments and `{name}` captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    raw: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// Why a route template was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The template does not start with `/`.
    #[error("route `{0}` must start with `/`")]
    NoLeadingSlash(String),
    /// `//` or a trailing `/`.
    #[error("route `{0}` has an empty segment")]
    EmptySegment(String),
    /// A `{` or `}` that does not form a whole-segment `{name}`.
    #[error("route `{route}` has a malformed segment `{segment}`")]
    BadSegment {
        /// The template.
        route: String,
        /// The offending segment.
        segment: String,
    },
    /// A capture name that is not an identifier.
    #[error("route `{route}` has an invalid parameter name `{name}`")]
    BadParam {
        /// The template.
        route: String,
        /// The name.
        name: String,
    },
    /// The same capture twice.
    #[error("route `{route}` captures `{name}` twice")]
    DuplicateParam {
        /// The template.
        route: String,
        /// The name.
        name: String,
    },
}

impl RouteTemplate {
    /// Parses and checks a template: it starts with `/`, has no empty segments, and every
    /// `{name}` is a whole segment with a unique identifier name.
    pub fn parse(raw: &str) -> Result<Self, RouteError> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(RouteError::NoLeadingSlash(raw.into()));
        };
        let mut segments = Vec::new();
        let mut seen = BTreeSet::new();
        if !rest.is_empty() {
            for seg in rest.split('/') {
                if seg.is_empty() {
                    return Err(RouteError::EmptySegment(raw.into()));
                }
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if !crate::expr::is_identifier(name) {
                        return Err(RouteError::BadParam {
                            route: raw.into(),
                            name: name.into(),
                        });
                    }
                    if !seen.insert(name.to_owned()) {
                        return Err(RouteError::DuplicateParam {
                            route: raw.into(),
                            name: name.into(),
                        });
                    }
                    segments.push(Segment::Param(name.into()));
                } else if seg.contains(['{', '}']) {
                    return Err(RouteError::BadSegment {
                        route: raw.into(),
                        segment: seg.into(),
                    });
                } else {
                    segments.push(Segment::Literal(seg.into()));
                }
            }
        }
        Ok(Self {
            raw: raw.into(),
            segments,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The capture names in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

impl fmt::Display for RouteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// One route an endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: HttpMethod,
    /// Path template relative to the mount point.
    pub path: RouteTemplate,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Name of the id segment of default routes when an endpoint reads no single request input.
pub const ENTITY_ID: &str = "entity_id";

pub(super) fn routes_of(endpoint: &Endpoint) -> Vec<Route> {
    if let Some(path) = &endpoint.path {
        let methods = if endpoint.methods.is_empty() {
            vec![HttpMethod::Get]
        } else {
            endpoint.methods.clone()
        };
        return methods
            .into_iter()
            .map(|method| Route {
                method,
                path: path.clone(),
            })
            .collect();
    }
    let methods = if endpoint.methods.is_empty() {
        vec![HttpMethod::Get, HttpMethod::Post]
    } else {
        endpoint.methods.clone()
    };
    let base = match &endpoint.domain {
        Some(d) => format!("/{d}/{}", endpoint.name),
        None => format!("/{}", endpoint.name),
    };
    let with_id = format!("{base}/{{{}}}", id_param_of(endpoint));
    let mut routes = Vec::new();
    for path in [base, with_id] {
        // The validator rejects names that cannot be route segments; a plan that was not
        // validated gets no route for them rather than a panic.
        let Ok(path) = RouteTemplate::parse(&path) else {
            continue;
        };
        routes.extend(methods.iter().map(|&method| Route {
            method,
            path: path.clone(),
        }));
    }
    routes
}

/// The name of the id segment of an endpoint's default routes: the one request input it reads by
/// shorthand or path param, or [`ENTITY_ID`].
pub fn id_param_of(endpoint: &Endpoint) -> String {
    let mut names = BTreeSet::new();
    for step in &endpoint.sources {
        for (_, t) in &step.params {
            t.visit_references(&mut |r| {
                if let Root::Request(RequestPart::Any | RequestPart::PathParams) = r.root
                    && let Some(name) = r.first_field()
                {
                    names.insert(name.to_owned());
                }
            });
        }
    }
    if names.len() == 1 {
        names.pop_first().unwrap_or_else(|| ENTITY_ID.into())
    } else {
        ENTITY_ID.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_captures() {
        let t = RouteTemplate::parse("/customers/{customer_id}/orders").unwrap();
        assert_eq!(t.params().collect::<Vec<_>>(), ["customer_id"]);
        assert_eq!(RouteTemplate::parse("/").unwrap().params().count(), 0);
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in [
            "customers",
            "/a//b",
            "/a/",
            "/a/{b",
            "/a/x{b}",
            "/a/{1b}",
            "/{a}/{a}",
        ] {
            assert!(RouteTemplate::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
