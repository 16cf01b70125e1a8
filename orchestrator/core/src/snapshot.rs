//! Schema snapshots: what each configured source really returns, recorded from the live
//! sources and committed beside the config (`.orchestrator/schema.json`), like sqlx's offline
//! query data.
//!
//! `check --prepare DIR` writes it (see the runtime crate's `prepare` module): per SQL
//! operation its result columns with their types and nullability, per Open Inference Protocol
//! model its input and output tensors, per Feast operation the features' value types, per API
//! operation a JSON Schema. When the file is there, the loader reads it and the validator
//! checks every reference into a source's result against it (an unknown field with "did you
//! mean", a path into a scalar, `[*]` over something that is not a list, operators between
//! incompatible types, a model input fed from a field of the wrong type); `orchestrate!` does
//! the same at compile time from the committed file, and the OpenAPI document takes its
//! response types from it. Without the file nothing changes.
//!
//! The format is plain JSON with sorted keys, so a change to a source shows as a small diff.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{
    DbOperation, Endpoint, ModelProtocol, OnError, OutputStep, Plan, ReturnType, SourceStep,
    SqlType,
};
use crate::types::Ty;

/// Where the snapshot lives, relative to the config directory.
pub const SNAPSHOT_FILE: &str = ".orchestrator/schema.json";

/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;

/// A config's schema snapshot: the global integrations' sources and, for domains that override
/// integration files, theirs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Snapshot {
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The sources of the global integration files.
    #[serde(default)]
    pub sources: Sources,
    /// The sources of each domain that has integration files of its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub domains: BTreeMap<String, Sources>,
}

/// The recorded sources of one integration scope.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Sources {
    /// SQL operations by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub database: BTreeMap<String, SqlResult>,
    /// Open Inference Protocol models by `server/model`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ml: BTreeMap<String, ModelSignature>,
    /// Feast operations by `server/operation`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feast: BTreeMap<String, FeatureTypes>,
    /// API operations by `service/operation`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api: BTreeMap<String, ApiSchema>,
}

/// A SQL operation's result columns, as the database describes the query.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlResult {
    /// The connection the query was described on.
    pub connection: String,
    /// The columns in result order.
    pub columns: Vec<Column>,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Column {
    /// Its name.
    pub name: String,
    /// The database's type name (`INTEGER`, `TEXT`, `INT8`, `VARCHAR`, …).
    pub db_type: String,
    /// The JSON type its values take in a source's result.
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// Whether it can be NULL: `None` when the database cannot tell (an expression).
    pub nullable: Option<bool>,
}

impl Column {
    /// A column.
    pub fn new(
        name: impl Into<String>,
        db_type: impl Into<String>,
        ty: ValueType,
        nullable: Option<bool>,
    ) -> Self {
        Self {
            name: name.into(),
            db_type: db_type.into(),
            ty,
            nullable,
        }
    }
}

/// The JSON type of a recorded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// `true` / `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// Text (also dates, times, decimals and bytes, which sources return as text).
    String,
    /// Any JSON document (a JSON column).
    Json,
    /// Not known (an untyped SQLite expression, a feature that was null in the sample).
    Unknown,
}

impl ValueType {
    /// As a [`Ty`].
    pub fn ty(self) -> Ty {
        match self {
            Self::Boolean => Ty::Boolean,
            Self::Integer => Ty::Integer,
            Self::Number => Ty::Number,
            Self::String => Ty::String,
            Self::Json | Self::Unknown => Ty::Any,
        }
    }

    /// The type of a sampled JSON value.
    pub fn of_value(v: &serde_json::Value) -> Self {
        match Ty::of_value(v) {
            Ty::Boolean => Self::Boolean,
            Ty::Integer => Self::Integer,
            Ty::Number => Self::Number,
            Ty::String => Self::String,
            Ty::Null => Self::Unknown,
            _ => Self::Json,
        }
    }

    /// The type an Open Inference Protocol datatype (`FP32`, `INT64`, `BOOL`, `BYTES`) gives.
    pub fn of_datatype(datatype: &str) -> Self {
        match datatype {
            "BOOL" => Self::Boolean,
            d if d.starts_with("INT") || d.starts_with("UINT") => Self::Integer,
            d if d.starts_with("FP") || d == "BF16" => Self::Number,
            "BYTES" => Self::String,
            _ => Self::Unknown,
        }
    }
}

/// An Open Inference Protocol model's metadata (`GET /v2/models/{model}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSignature {
    /// Input tensors.
    pub inputs: Vec<Tensor>,
    /// Output tensors.
    pub outputs: Vec<Tensor>,
}

/// A tensor of a model's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Tensor {
    /// Its name.
    pub name: String,
    /// Its datatype (`FP32`, `INT64`, `BYTES`, …).
    pub datatype: String,
    /// Its shape; `-1` is a variable dimension.
    pub shape: Vec<i64>,
}

impl Tensor {
    /// A tensor.
    pub fn new(name: impl Into<String>, datatype: impl Into<String>, shape: Vec<i64>) -> Self {
        Self {
            name: name.into(),
            datatype: datatype.into(),
            shape,
        }
    }

    /// The type of one row's value: a scalar when each row has one value, a list when it has
    /// several, unknown when the shape does not say.
    fn row_type(&self) -> Ty {
        let scalar = ValueType::of_datatype(&self.datatype).ty();
        let rest = self.shape.get(1..).unwrap_or_default();
        if rest.iter().any(|&d| d < 0) {
            return Ty::Any;
        }
        // (A committed file is input too: a product that overflows says nothing.)
        match rest.iter().try_fold(1i64, |n, &d| n.checked_mul(d)) {
            Some(1) => scalar,
            Some(_) => Ty::Array(Box::new(scalar)),
            None => Ty::Any,
        }
    }
}

/// A Feast operation's features and their value types, from a sample lookup.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureTypes {
    /// Result field (the feature's output name, join keys included) → its type.
    pub features: BTreeMap<String, ValueType>,
}

/// An API operation's answer schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSchema {
    /// Where it came from: `openapi` (the service's published document) or `sample` (inferred
    /// from one answer to the operation's `sample` params).
    pub from: String,
    /// A JSON Schema of the operation's result (after its `extract`).
    pub schema: serde_json::Value,
}

impl Snapshot {
    /// An empty snapshot of the current version.
    pub fn new() -> Self {
        Self {
            version: VERSION,
            ..Self::default()
        }
    }

    /// Reads a snapshot; the error says why it cannot be used.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let version = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| format!("not JSON: {e}"))?
            .get("version")
            .and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(VERSION)) {
            return Err(format!(
                "format version {} is not the version this build reads ({VERSION})",
                version.map_or("(none)".to_owned(), |v| v.to_string())
            ));
        }
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The snapshot as committed: pretty JSON, keys sorted, a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The recorded sources an endpoint's steps resolve against.
    pub fn sources_for(&self, plan: &Plan, e: &Endpoint) -> Option<&Sources> {
        match e.domain.as_deref() {
            Some(d) if plan.integrations.domains.contains_key(d) => self.domains.get(d),
            _ => Some(&self.sources),
        }
    }

    /// The type of a step's result by the snapshot, before its `transform:` steps; `None` when
    /// the snapshot does not know it (no entry, a source type it does not record, or a step
    /// whose `on_error: default` or `fallback` makes the result something else).
    pub fn step_type(&self, plan: &Plan, e: &Endpoint, s: &SourceStep) -> Option<Ty> {
        if s.fallback.is_some()
            || s.params_from.is_some()
            || !matches!(s.on_error, OnError::Fail | OnError::Skip)
        {
            return None;
        }
        let recorded = self.sources_for(plan, e)?;
        let integrations = plan.integrations_for(e);
        let op = s.operation.as_deref()?;
        let t = match s.kind.as_str() {
            "database" => recorded
                .database
                .get(op)?
                .result_type(integrations.database.operations.get(op)?),
            kind @ ("ml" | "feast" | "api") => {
                let service = integrations.service_of(kind, Some(op), s.source_id.as_deref())?;
                let key = format!("{}/{op}", service.id);
                match kind {
                    "ml" => {
                        let server = integrations.ml.sources.get(service.id)?;
                        let model = server.models.get(op)?;
                        if model.protocol != ModelProtocol::V2 {
                            return None;
                        }
                        let row = recorded.ml.get(&key)?.row_type(model);
                        if s.params.iter().any(|(k, _)| k == "rows") {
                            Ty::Array(Box::new(row))
                        } else {
                            row
                        }
                    }
                    "feast" => {
                        let features = &recorded.feast.get(&key)?.features;
                        let row = Ty::object(
                            features
                                .iter()
                                .map(|(k, v)| (k.clone(), v.ty().or_null()))
                                .collect(),
                        );
                        // Arrays of entity keys ask for several entities.
                        let many = s
                            .params
                            .iter()
                            .any(|(_, t)| matches!(t, crate::expr::Template::Array(_)));
                        if many { Ty::Array(Box::new(row)) } else { row }
                    }
                    _ => {
                        let answer = Ty::from_schema(
                            &recorded.api.get(&key)?.schema,
                            &serde_json::Value::Null,
                        );
                        let operation = integrations
                            .api
                            .sources
                            .get(service.id)?
                            .operations
                            .get(op)?;
                        match &operation.batch {
                            None => answer,
                            // A batch operation answers a list of items; a call for one key
                            // (as each element of a `for_each` is) gets its item, null when
                            // `match` finds none.
                            Some(b) => {
                                let item = match answer.non_null() {
                                    Ty::Array(item) => (**item).clone(),
                                    _ => Ty::Any,
                                };
                                let item = if b.matched_by.is_some() {
                                    item.or_null()
                                } else {
                                    item
                                };
                                let many = s.for_each.is_none()
                                    && s.params.iter().any(|(k, t)| {
                                        *k == b.param
                                            && matches!(t, crate::expr::Template::Array(_))
                                    });
                                if many {
                                    Ty::Array(Box::new(item))
                                } else {
                                    item
                                }
                            }
                        }
                    }
                }
            }
            _ => return None,
        };
        // A required source that finds nothing answers 404: past it, its result is there.
        let t = if s.required { t.non_null().clone() } else { t };
        let optional = s.condition.is_some() || s.on_error == OnError::Skip;
        Some(if optional { t.or_null() } else { t })
    }
}

impl SqlResult {
    /// One row's type: the columns, with `columns:` conversions applied.
    pub fn row_type(&self, op: &DbOperation) -> Ty {
        Ty::object(
            self.columns
                .iter()
                .map(|c| {
                    let t = match op.columns.get(&c.name) {
                        Some(SqlType::String) => Ty::String,
                        Some(SqlType::Integer) => Ty::Integer,
                        Some(SqlType::Number) => Ty::Number,
                        Some(SqlType::Boolean) => Ty::Boolean,
                        Some(SqlType::Json) => Ty::Any,
                        None => c.ty.ty(),
                    };
                    let t = if c.nullable == Some(false) {
                        t
                    } else {
                        t.or_null()
                    };
                    (c.name.clone(), t)
                })
                .collect(),
        )
    }

    /// The operation's result: a row or null (`single`), a list of rows (`list`), the first
    /// column of the first row (`value`).
    pub fn result_type(&self, op: &DbOperation) -> Ty {
        let row = self.row_type(op);
        match op.return_type {
            ReturnType::Single => row.or_null(),
            ReturnType::List => Ty::Array(Box::new(row)),
            ReturnType::Value => match row {
                Ty::Object { fields, .. } => fields
                    .into_iter()
                    .next()
                    .map_or(Ty::Null, |(_, t)| t.or_null()),
                _ => Ty::Any,
            },
        }
    }
}

impl ModelSignature {
    /// One row's prediction as the model's `outputs:` maps it (or the output tensors by
    /// name).
    pub fn row_type(&self, model: &crate::plan::Model) -> Ty {
        let tensor = |name: &str| self.outputs.iter().find(|t| t.name == name);
        if model.outputs.is_empty() {
            return Ty::object(
                self.outputs
                    .iter()
                    .map(|t| (t.name.clone(), t.row_type()))
                    .collect(),
            );
        }
        let fields = model
            .outputs
            .iter()
            .map(|(field, path)| {
                let t = crate::plan::OutputPath::parse(path).ok().and_then(|p| {
                    let (first, rest) = p.0.split_first()?;
                    let OutputStep::Key(name) = first else {
                        return None;
                    };
                    let mut t = tensor(name)?.row_type();
                    for step in rest {
                        t = match (step, t) {
                            (OutputStep::Index(_), Ty::Array(item)) => *item,
                            _ => return Some(Ty::Any),
                        };
                    }
                    Some(t)
                });
                (field.clone(), t.unwrap_or(Ty::Any))
            })
            .collect();
        Ty::object(fields)
    }

    /// The datatype of the input tensor a model's features go into.
    pub fn input_datatype(&self, model: &crate::plan::Model) -> Option<&str> {
        let wanted = model.input_name.as_deref().unwrap_or("input-0");
        self.inputs
            .iter()
            .find(|i| i.name == wanted)
            .or_else(|| {
                (self.inputs.len() == 1 && model.input_name.is_none()).then(|| &self.inputs[0])
            })
            .map(|i| i.datatype.as_str())
    }
}
