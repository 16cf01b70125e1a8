//! The expression parser and evaluator: any text parses to an expression or an error, and any
//! expression evaluates to a value against any request and sources, without a panic.
#![no_main]

use api_orchestrator_core::RequestContext;
use api_orchestrator_core::expr::{Expr, Scope};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

struct Fixed {
    request: RequestContext,
    a: Value,
}

impl Scope for Fixed {
    fn request(&self) -> &RequestContext {
        &self.request
    }
    fn source(&self, name: &str) -> Option<&Value> {
        (name == "a").then_some(&self.a)
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(expr) = Expr::parse(&text) else {
        return;
    };
    let scope = Fixed {
        request: RequestContext::new()
            .with_path_param("id", 42)
            .with_query_param("q", "x")
            .with_body(json!({"n": [1, 2.5, "3"], "s": "text", "o": {"k": null}})),
        a: json!({"x": 1, "list": [{"v": 1}, {"v": -2}], "s": "abc", "f": 1e308}),
    };
    drop(expr.eval(&scope));
});
