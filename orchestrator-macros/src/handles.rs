//! The item form, `orchestrate! { mod shop; … }`: a module with the plan and a typed handle
//! per endpoint, so that `orchestrator.execute(shop::endpoints::price, input)` names an
//! endpoint the compiler knows and takes the input it declares.

use api_orchestrator_core::plan::{Endpoint, InputField, InputType, Plan};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

/// `[pub] mod name`.
pub(crate) struct Module {
    pub(crate) vis: TokenStream,
    pub(crate) name: Ident,
}

/// The module: `plan()` (built by `plan_expression`) and `endpoints`.
pub(crate) fn module(
    m: &Module,
    plan: &Plan,
    plan_expression: TokenStream,
) -> syn::Result<TokenStream> {
    let (vis, name) = (&m.vis, &m.name);
    let mut handles = Vec::with_capacity(plan.endpoints.len());
    let mut errors: Option<syn::Error> = None;
    for e in &plan.endpoints {
        match handle(e) {
            Ok(h) => handles.push(h),
            Err(err) => match &mut errors {
                Some(all) => all.combine(err),
                None => errors = Some(err),
            },
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    let doc = format!(
        "The endpoints of `{name}`'s plan, one typed handle each: pass one to \
         `Orchestrator::execute` with its input."
    );
    Ok(quote! {
        #[doc = "The plan built by `orchestrate!`, checked at compile time, and a typed handle per endpoint."]
        #vis mod #name {
            /// The plan, checked when the crate was compiled.
            pub fn plan() -> ::api_orchestrator::ValidPlan {
                #plan_expression
            }

            #[doc = #doc]
            pub mod endpoints {
                #(#handles)*
            }
        }
    })
}

/// One endpoint's handle: a unit struct named like the endpoint, and its input type.
fn handle(e: &Endpoint) -> syn::Result<TokenStream> {
    let ident = identifier(&e.name).ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            format!(
                "endpoint `{}` cannot be a Rust name: rename it for the `mod` form",
                e.name
            ),
        )
    })?;
    let name = &e.name;
    let summary = e.description.as_deref().unwrap_or("");
    let doc = format!("Endpoint `{name}`. {summary}");
    let fields: Vec<(&str, &InputField)> = [
        ("path", &e.input.path),
        ("query", &e.input.query),
        ("body", &e.input.body),
    ]
    .into_iter()
    .flat_map(|(part, fields)| fields.iter().map(move |f| (part, f)))
    .collect();
    let (input, conversion) = if fields.is_empty() {
        (
            quote!(::api_orchestrator::RequestContext),
            TokenStream::new(),
        )
    } else {
        let input = format_ident!("{}Input", camel(name));
        let (decls, conversion) = input_struct(&input, name, &fields);
        (quote!(#input), quote!(#decls #conversion))
    };
    Ok(quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct #ident;

        impl ::api_orchestrator::EndpointHandle for #ident {
            type Input = #input;
            fn name(&self) -> &str {
                #name
            }
        }

        #conversion
    })
}

/// The struct of an endpoint's declared inputs, and its conversion into a request.
fn input_struct(
    input: &Ident,
    endpoint: &str,
    fields: &[(&str, &InputField)],
) -> (TokenStream, TokenStream) {
    let mut used: Vec<String> = Vec::new();
    let mut decls = Vec::new();
    let mut sets = Vec::new();
    for (part, f) in fields {
        // A Rust name for the input (`x-api-key` → `x_api_key`), prefixed by its part when two
        // parts use the same one.
        let mut rust = snake(&f.name);
        if used.contains(&rust) {
            rust = format!("{part}_{rust}");
        }
        used.push(rust.clone());
        let field = identifier(&rust).unwrap_or_else(|| format_ident!("{part}_{}", used.len()));
        let ty = rust_type(f);
        let doc = format!(
            "`{}` in the {part}{}{}",
            f.name,
            if f.required { "" } else { " (optional)" },
            f.description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        decls.push(quote!(#[doc = #doc] pub #field: #ty,));
        let name = &f.name;
        let target = match *part {
            "path" => quote!(request.path_params),
            "query" => quote!(request.query_params),
            _ => quote!(body),
        };
        sets.push(if f.required {
            quote!(#target.insert(#name.into(), ::api_orchestrator::__private::serde_json::Value::from(input.#field));)
        } else {
            quote!(if let ::core::option::Option::Some(v) = input.#field {
                #target.insert(#name.into(), ::api_orchestrator::__private::serde_json::Value::from(v));
            })
        });
    }
    let has_body = fields.iter().any(|(part, _)| *part == "body");
    let (body_start, body_end) = if has_body {
        (
            quote!(let mut body = ::api_orchestrator::__private::serde_json::Map::new();),
            quote!(request.body = ::api_orchestrator::__private::serde_json::Value::Object(body);),
        )
    } else {
        (TokenStream::new(), TokenStream::new())
    };
    let doc = format!("The inputs endpoint `{endpoint}` declares (`input:`).");
    (
        quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq, Default)]
            pub struct #input { #(#decls)* }
        },
        quote! {
            impl ::core::convert::From<#input> for ::api_orchestrator::RequestContext {
                fn from(input: #input) -> Self {
                    let mut request = ::api_orchestrator::RequestContext::new();
                    #body_start
                    #(#sets)*
                    #body_end
                    request
                }
            }
        },
    )
}

fn rust_type(f: &InputField) -> TokenStream {
    let json = quote!(::api_orchestrator::__private::serde_json);
    let t = match f.ty {
        InputType::String => quote!(::std::string::String),
        InputType::Integer => quote!(i64),
        InputType::Number => quote!(f64),
        InputType::Boolean => quote!(bool),
        InputType::Object => quote!(#json::Map<::std::string::String, #json::Value>),
        InputType::Array => quote!(::std::vec::Vec<#json::Value>),
    };
    if f.required {
        t
    } else {
        quote!(::core::option::Option<#t>)
    }
}

/// `name` as an identifier, raw (`r#type`) when it is a keyword; `None` when it cannot be one.
fn identifier(name: &str) -> Option<Ident> {
    if syn::parse_str::<Ident>(name).is_ok() {
        return Some(Ident::new(name, Span::call_site()));
    }
    let raw = format!("r#{name}");
    syn::parse_str::<Ident>(&raw).ok()
}

/// `get_customer_360` → `GetCustomer360`.
fn camel(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|first| first.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `X-Api-Key` → `x_api_key`; a leading digit gets a `_`.
fn snake(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_rust_names() {
        assert_eq!(camel("get_customer_360"), "GetCustomer360");
        assert_eq!(snake("X-Api-Key"), "x_api_key");
        assert_eq!(snake("1st"), "_1st");
        assert_eq!(identifier("type").unwrap().to_string(), "r#type");
        assert!(identifier("self").is_none());
    }
}
