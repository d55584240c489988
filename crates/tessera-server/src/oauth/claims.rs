//! Custom claims an operator declares for a client (or an API key), added to every token it
//! gets and to introspection answers.

use std::sync::Arc;

use serde_json::{Map, Value};

/// Claim names a custom claim may not take: the registered and protocol claims this server sets
/// or that change a token's meaning (RFC 7519 §4.1, RFC 9068 §2.2, RFC 8693 `act`, RFC 7800
/// `cnf`), and the members an introspection answer adds (`active`, `token_type`).
pub const RESERVED: [&str; 13] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "cnf",
    "act",
    // Introspection answers (RFC 7662 §2.2) carry these beside the claims.
    "active",
    "token_type",
];

/// Largest custom-claims object, serialised, in bytes.
pub const MAX_BYTES: usize = 4096;

/// Why claims were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// A reserved name.
    #[error("claim '{0}' is set by the server and cannot be declared")]
    Reserved(String),
    /// An empty, over-long or non-printable name.
    #[error("claim names are 1 to 64 printable characters: '{0}'")]
    BadName(String),
    /// Over [`MAX_BYTES`].
    #[error("custom claims are limited to {MAX_BYTES} bytes of JSON")]
    TooLarge,
    /// A value that is not JSON (for `--claim-json`), or stored text that is not an object.
    #[error("not JSON: {0}")]
    NotJson(String),
}

/// Custom claims, checked, with their JSON text ready to add to a token (computed once, when the
/// client is loaded, so issuing a token costs a copy, not a serialisation).
#[derive(Debug, Clone, Default)]
pub struct CustomClaims(Option<Arc<Claims>>);

/// Non-empty claims: the map and its JSON members text. Behind one pointer, so a client without
/// claims (nearly all) spends 8 bytes on them.
#[derive(Debug)]
struct Claims {
    map: Map<String, Value>,
    /// The members as JSON text without the braces (`"a":1,"b":"x"`).
    members: Box<str>,
}

/// The empty map, for clients without claims.
static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl PartialEq for CustomClaims {
    fn eq(&self, other: &Self) -> bool {
        self.map() == other.map()
    }
}

impl CustomClaims {
    /// Check `map`: no reserved name, names 1..=64 printable characters, at most [`MAX_BYTES`].
    pub fn new(map: Map<String, Value>) -> Result<Self, ClaimsError> {
        for name in map.keys() {
            if RESERVED.contains(&name.as_str()) {
                return Err(ClaimsError::Reserved(name.clone()));
            }
            let ok = !name.is_empty()
                && name.chars().count() <= 64
                && !name.chars().any(char::is_control);
            if !ok {
                return Err(ClaimsError::BadName(name.clone()));
            }
        }
        let text = Value::Object(map.clone()).to_string();
        if text.len() > MAX_BYTES {
            return Err(ClaimsError::TooLarge);
        }
        if map.is_empty() {
            return Ok(Self(None));
        }
        let members = Box::from(&text[1..text.len() - 1]);
        Ok(Self(Some(Arc::new(Claims { map, members }))))
    }

    /// Parse stored JSON text (an object).
    pub fn from_json(text: &str) -> Result<Self, ClaimsError> {
        // What nearly every stored row holds: no parse, no allocation.
        if text == "{}" {
            return Ok(Self::default());
        }
        match serde_json::from_str(text).map_err(|e| ClaimsError::NotJson(e.to_string()))? {
            Value::Object(map) => Self::new(map),
            _ => Err(ClaimsError::NotJson("not an object".into())),
        }
    }

    /// The claims as a JSON object text (for storage).
    pub fn to_json(&self) -> String {
        Value::Object(self.map().clone()).to_string()
    }

    /// The claims.
    pub fn map(&self) -> &Map<String, Value> {
        match &self.0 {
            Some(c) => &c.map,
            None => &EMPTY,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Add the claims to `object`, the JSON text of an object (`{…}`) whose names are all
    /// reserved ones, so no name can repeat.
    pub fn splice_into(&self, object: &mut Vec<u8>) {
        let Some(claims) = &self.0 else {
            return;
        };
        let members = &claims.members;
        if object.last() == Some(&b'}') {
            object.pop();
            if object.len() > 1 {
                object.push(b',');
            }
            object.extend_from_slice(members.as_bytes());
            object.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn checks_and_splices() {
        let c =
            CustomClaims::new(map(json!({"tenant": "acme", "groups": ["git-admins"]}))).unwrap();
        let mut token = br#"{"iss":"x","sub":"y"}"#.to_vec();
        c.splice_into(&mut token);
        let v: Value = serde_json::from_slice(&token).unwrap();
        assert_eq!(
            v,
            json!({"iss": "x", "sub": "y", "tenant": "acme", "groups": ["git-admins"]})
        );
        let mut empty = b"{}".to_vec();
        c.splice_into(&mut empty);
        assert!(serde_json::from_slice::<Value>(&empty).is_ok());
        for reserved in RESERVED {
            assert_eq!(
                CustomClaims::new(map(json!({reserved: 1}))).unwrap_err(),
                ClaimsError::Reserved(reserved.into())
            );
        }
        assert_eq!(
            CustomClaims::new(map(json!({"big": "x".repeat(MAX_BYTES)}))).unwrap_err(),
            ClaimsError::TooLarge
        );
        assert!(CustomClaims::new(map(json!({"": 1}))).is_err());
        assert_eq!(CustomClaims::from_json(&c.to_json()).unwrap(), c);
    }
}
