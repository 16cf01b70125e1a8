//! Declared inputs (`input:` of an endpoint): checked before any source runs, and converted to
//! their type, so `$request.limit` is a number when `limit` is declared `integer`.

use serde_json::{Map, Value, json};

use crate::RequestContext;
use crate::plan::{InputField, InputSchema, InputType};

/// Checks and converts the declared inputs of `ctx`; every problem is one `{in, name,
/// problem}` object.
pub(super) fn apply(schema: &InputSchema, ctx: &mut RequestContext) -> Result<(), Vec<Value>> {
    if schema.is_empty() {
        return Ok(());
    }
    let mut errors = Vec::new();
    check(
        &schema.path,
        &mut ctx.path_params,
        "path",
        true,
        &mut errors,
    );
    check(
        &schema.query,
        &mut ctx.query_params,
        "query",
        true,
        &mut errors,
    );
    if !schema.body.is_empty() {
        match &mut ctx.body {
            Value::Object(body) => check(&schema.body, body, "body", false, &mut errors),
            Value::Null => {
                let mut empty = Map::new();
                check(&schema.body, &mut empty, "body", false, &mut errors);
            }
            _ => errors.push(
                json!({"in": "body", "name": null, "problem": "the body must be a JSON object"}),
            ),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `from_text`: values arrive as text (path and query) and are parsed; body values must
/// already have their JSON type.
fn check(
    fields: &[InputField],
    values: &mut Map<String, Value>,
    part: &str,
    from_text: bool,
    errors: &mut Vec<Value>,
) {
    for f in fields {
        let problem = match values.get_mut(&f.name) {
            None | Some(Value::Null) if f.required => Some("is required".to_owned()),
            None | Some(Value::Null) => None,
            Some(v) => match convert(v, f.ty, from_text) {
                Some(converted) => {
                    *v = converted;
                    None
                }
                None => Some(format!("must be {}", article(f.ty))),
            },
        };
        if let Some(problem) = problem {
            errors.push(json!({"in": part, "name": f.name, "problem": problem}));
        }
    }
}

fn article(ty: InputType) -> &'static str {
    match ty {
        InputType::String => "a string",
        InputType::Integer => "an integer",
        InputType::Number => "a number",
        InputType::Boolean => "a boolean",
        InputType::Object => "an object",
        InputType::Array => "an array",
    }
}

fn convert(v: &Value, ty: InputType, from_text: bool) -> Option<Value> {
    if from_text && let Value::String(s) = v {
        let s = s.trim();
        return match ty {
            InputType::String => Some(v.clone()),
            InputType::Integer => s.parse::<i64>().ok().map(Value::from),
            InputType::Number => s
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::from),
            InputType::Boolean => match s {
                "true" | "1" => Some(Value::Bool(true)),
                "false" | "0" => Some(Value::Bool(false)),
                _ => None,
            },
            // A single query value for an array input is a one-item array.
            InputType::Array => Some(Value::Array(vec![v.clone()])),
            InputType::Object => None,
        };
    }
    let ok = match ty {
        InputType::String => v.is_string(),
        InputType::Integer => v.is_i64() || v.is_u64(),
        InputType::Number => v.is_number(),
        InputType::Boolean => v.is_boolean(),
        InputType::Object => v.is_object(),
        InputType::Array => v.is_array(),
    };
    ok.then(|| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, ty: InputType, required: bool) -> InputField {
        let mut f = InputField::default();
        f.name = name.into();
        f.ty = ty;
        f.required = required;
        f
    }

    #[test]
    fn converts_text_and_lists_every_problem() {
        let mut schema = InputSchema::default();
        schema.path = vec![field("id", InputType::Integer, true)];
        schema.query = vec![
            field("limit", InputType::Integer, false),
            field("tags", InputType::Array, false),
        ];
        schema.body = vec![field("amount", InputType::Number, true)];
        let mut ok = RequestContext::new()
            .with_path_param("id", "42")
            .with_query_param("tags", "a")
            .with_body(json!({"amount": 9.5}));
        apply(&schema, &mut ok).unwrap();
        assert_eq!(ok.path_params["id"], json!(42));
        assert_eq!(ok.query_params["tags"], json!(["a"]));

        let mut bad = RequestContext::new()
            .with_path_param("id", "x")
            .with_query_param("limit", "ten")
            .with_body(json!({"amount": "9.5"}));
        let errors = apply(&schema, &mut bad).unwrap_err();
        assert_eq!(
            errors,
            [
                json!({"in": "path", "name": "id", "problem": "must be an integer"}),
                json!({"in": "query", "name": "limit", "problem": "must be an integer"}),
                json!({"in": "body", "name": "amount", "problem": "must be a number"}),
            ]
        );
    }
}
