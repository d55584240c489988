//! The OAuth error body.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// RFC 6749 §5.2 (and RFC 7009, RFC 7662, RFC 8707): `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody<'a> {
    /// The error code, e.g. `invalid_client`.
    pub error: Cow<'a, str>,
    /// Human-readable text; never a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        let e = ErrorBody {
            error: "invalid_scope".into(),
            error_description: Some("scope not allowed".into()),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"error":"invalid_scope","error_description":"scope not allowed"}"#
        );
        let bare: ErrorBody = serde_json::from_str(r#"{"error":"invalid_client"}"#).unwrap();
        assert_eq!(bare.error, "invalid_client");
        assert_eq!(bare.error_description, None);
    }
}
