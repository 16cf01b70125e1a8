//! Bearer tokens on the orchestrated routes (`auth:` in `config.yaml`): an HS256 JWT in
//! `Authorization: Bearer …`, its signature checked in constant time (ring's HMAC), `exp`
//! required and enforced, `nbf` enforced when present. Only HS256 is accepted, so a token
//! cannot pick a weaker algorithm (`none`) or a key type of its own.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use serde_json::{Map, Value};

use crate::plan::AuthSettings;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// Why a request was not authenticated (the `detail` of the 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rejected {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a well-formed HS256 JWT, or its signature does not verify.
    Invalid,
    /// Past its `exp` (or before its `nbf`), or without `exp`.
    Expired,
}

impl Rejected {
    pub(super) fn detail(self) -> &'static str {
        match self {
            Self::Missing => "send `Authorization: Bearer <token>`",
            Self::Invalid => "the bearer token is not a valid HS256 token for this service",
            Self::Expired => "the bearer token has expired (or has no `exp`)",
        }
    }
}

/// The verified claims of the request's bearer token.
pub(super) fn verify(
    settings: &AuthSettings,
    headers: &HeaderMap,
    now_secs: u64,
) -> Result<Map<String, Value>, Rejected> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(Rejected::Missing)?;
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejected::Invalid);
    };
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| Rejected::Invalid);
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| Rejected::Invalid)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(Rejected::Invalid);
    }
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        settings.jwt_secret.expose().as_bytes(),
    );
    let signed = &token[..token.len() - signature.len() - 1];
    ring::hmac::verify(&key, signed.as_bytes(), &decode(signature)?)
        .map_err(|_| Rejected::Invalid)?;
    let Value::Object(claims) =
        serde_json::from_slice(&decode(claims)?).map_err(|_| Rejected::Invalid)?
    else {
        return Err(Rejected::Invalid);
    };
    let time = |name: &str| claims.get(name).and_then(Value::as_f64);
    match time("exp") {
        Some(exp) if exp + LEEWAY_SECS as f64 > now_secs as f64 => {}
        _ => return Err(Rejected::Expired),
    }
    if let Some(nbf) = time("nbf")
        && nbf > (now_secs + LEEWAY_SECS) as f64
    {
        return Err(Rejected::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn token(secret: &str, header: &Value, claims: &Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let signed = format!("{}.{}", enc(header), enc(claims));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
        format!("{signed}.{sig}")
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn checks_signature_algorithm_and_expiry() {
        let s = AuthSettings::hs256("a-secret-of-some-length");
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let good = token(
            s.jwt_secret.expose(),
            &hs,
            &json!({"sub": "ada", "exp": 2_000}),
        );
        assert_eq!(verify(&s, &headers(&good), 1_000).unwrap()["sub"], "ada");
        assert_eq!(verify(&s, &headers(&good), 3_000), Err(Rejected::Expired));
        let forged = token("another-secret-entirely", &hs, &json!({"exp": 2_000}));
        assert_eq!(verify(&s, &headers(&forged), 1_000), Err(Rejected::Invalid));
        let none = token(
            s.jwt_secret.expose(),
            &json!({"alg": "none"}),
            &json!({"exp": 2_000}),
        );
        assert_eq!(verify(&s, &headers(&none), 1_000), Err(Rejected::Invalid));
        let no_exp = token(s.jwt_secret.expose(), &hs, &json!({"sub": "ada"}));
        assert_eq!(verify(&s, &headers(&no_exp), 1_000), Err(Rejected::Expired));
        assert_eq!(verify(&s, &HeaderMap::new(), 1_000), Err(Rejected::Missing));
        assert_eq!(
            verify(&s, &headers("not.a-token"), 1_000),
            Err(Rejected::Invalid)
        );
    }
}
