//! RFC 6749 §5.2 error codes, plus RFC 8707's `invalid_target`.

use std::borrow::Cow;
use std::fmt;

/// The `error` value of an RFC 6749 §5.2 error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed request: missing or repeated parameter, wrong content type, two auth methods.
    InvalidRequest,
    /// Client authentication failed: unknown client, wrong secret, disabled client, no auth.
    InvalidClient,
    /// The assertion of the JWT-bearer grant is not accepted (RFC 7523 §3.1).
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported by this server.
    UnsupportedGrantType,
    /// A requested scope is not allowed for the client, or the scope is malformed.
    InvalidScope,
    /// RFC 8707 §2: the requested resource or audience is not allowed for the client.
    InvalidTarget,
    /// The server is overloaded or its database is unreachable; retry later.
    TemporarilyUnavailable,
    /// An unexpected failure on the server side (never caused by input).
    ServerError,
}

impl ErrorCode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// A protocol error: the code, a human description that never contains a secret, and what the
/// HTTP layer needs to answer it correctly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC 6749 error code.
    pub code: ErrorCode,
    /// `error_description`: fixed text or names of scopes/audiences, never a credential.
    pub description: Cow<'static, str>,
    /// The client tried HTTP Basic authentication, so a 401 must carry `WWW-Authenticate: Basic`
    /// (RFC 6749 §5.2).
    pub basic_challenge: bool,
    /// Seconds for `Retry-After` on `temporarily_unavailable`.
    pub retry_after: Option<u32>,
    /// The client is over its token quota: 429 (RFC 6585) rather than 503.
    pub too_many: bool,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
            too_many: false,
        }
    }

    /// Over the client's token quota: 429 with `Retry-After`, an RFC 6749-shaped body whose
    /// `error` is `temporarily_unavailable` (RFC 6749 has no code of its own for it).
    pub fn quota_exceeded(retry_after: u32) -> Self {
        Self {
            too_many: true,
            ..Self::unavailable(
                "token quota exceeded for this client; retry later",
                retry_after,
            )
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client` with the description every authentication failure shares, so that the
    /// answer does not tell an attacker whether the client id or the secret was wrong.
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }

    /// `temporarily_unavailable` with a `Retry-After`.
    pub fn unavailable(description: impl Into<Cow<'static, str>>, retry_after: u32) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(ErrorCode::TemporarilyUnavailable, description)
        }
    }

    /// Mark that the client used (or tried) HTTP Basic authentication.
    pub fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }
}

/// Whether `c` may appear in an `error_description` (RFC 6749 §5.2: %x20-21 / %x23-5B /
/// %x5D-7E, so no `"`, no `\\`, nothing outside printable ASCII).
pub fn description_char(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// Longest run of caller-supplied text an `error_description` carries.
pub const MAX_CALLER_TEXT: usize = 64;

/// Caller-supplied text (a scope name, say) as it may appear in an `error_description`: at most
/// [`MAX_CALLER_TEXT`] characters, each outside the allowed set replaced by `?`.
pub fn caller_text(s: &str) -> String {
    s.chars()
        .take(MAX_CALLER_TEXT)
        .map(|c| if description_char(c) { c } else { '?' })
        .collect()
}

/// A description with every character outside the RFC 6749 §5.2 set replaced by `?`: the last
/// guard before a description goes on the wire.
pub fn wire_description(s: &str) -> Cow<'_, str> {
    if s.chars().all(description_char) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| if description_char(c) { c } else { '?' })
                .collect(),
        )
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_text_is_cut_and_kept_to_the_rfc_characters() {
        let evil = format!("a\"b\\c\u{e9}\n{}", "x".repeat(100));
        let t = caller_text(&evil);
        assert_eq!(t.chars().count(), MAX_CALLER_TEXT);
        assert!(t.starts_with("a?b?c??"));
        assert!(t.chars().all(description_char));
        assert_eq!(wire_description("ok text"), "ok text");
        assert_eq!(wire_description("q\"uote"), "q?uote");
    }
}
