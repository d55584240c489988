//! A verified access token.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::VerifyError;

/// A string claim: where it sits in the raw claims text (the usual case: the claims hold it
/// without escapes), or its unescaped copy.
#[derive(Clone)]
pub(crate) enum Text {
    Span(usize, usize),
    Owned(Box<str>),
}

impl Text {
    /// `value` as found in `raw`: a span when `value` is a slice of `raw` (serde borrowed it),
    /// else a copy (JSON escapes had to be undone).
    pub(crate) fn of(value: &str, raw: &str) -> Self {
        let start = (value.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
        let end = start.wrapping_add(value.len());
        if start <= raw.len() && end <= raw.len() && raw.get(start..end) == Some(value) {
            Text::Span(start, end)
        } else {
            Text::Owned(value.into())
        }
    }
}

/// The audience claim: one value or a list (RFC 7519 §4.1.3).
#[derive(Clone)]
pub(crate) enum Audience {
    One(Text),
    Many(Box<[Text]>),
}

/// A token that passed verification.
///
/// It holds the claims text once and reads the claims it exposes from there, so verifying a
/// token makes a single allocation for it.
#[derive(Clone)]
pub struct AccessToken {
    /// The claims JSON as sent; every `Text::Span` points into it.
    pub(crate) raw: Arc<str>,
    pub(crate) client_id: Text,
    pub(crate) subject: Option<Text>,
    /// The `scope` claim, space-separated (RFC 9068 §2.2.3.1).
    pub(crate) scope: Option<Text>,
    pub(crate) audience: Audience,
    pub(crate) expires_at: i64,
    pub(crate) issued_at: Option<i64>,
    pub(crate) jti: Option<Text>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("client_id", &self.client_id())
            .field("subject", &self.subject())
            .field("scopes", &self.scopes())
            .field("audience", &self.audience().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at)
            .field("jti", &self.jti())
            .finish_non_exhaustive()
    }
}

/// A required scope is missing.
pub type ScopeError = VerifyError;

impl AccessToken {
    /// A principal that did not come from a JWT (a static API key): no claims, no audience,
    /// no expiry.
    pub(crate) fn without_claims(client_id: String, scopes: &BTreeSet<String>) -> Self {
        let scope = scopes
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            raw: Arc::from("{}"),
            subject: Some(Text::Owned(client_id.as_str().into())),
            client_id: Text::Owned(client_id.into()),
            scope: Some(Text::Owned(scope.into())),
            audience: Audience::Many(Box::new([])),
            expires_at: i64::MAX,
            issued_at: None,
            jti: None,
        }
    }

    fn text<'a>(&'a self, t: &'a Text) -> &'a str {
        match t {
            Text::Span(start, end) => self.raw.get(*start..*end).unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }

    /// `client_id` (or `sub` when the issuer omits `client_id`).
    pub fn client_id(&self) -> &str {
        self.text(&self.client_id)
    }

    /// `sub` (empty if the token has none).
    pub fn subject(&self) -> &str {
        self.subject.as_ref().map_or("", |t| self.text(t))
    }

    /// The granted scopes, as a set.
    pub fn scopes(&self) -> BTreeSet<&str> {
        self.scope_items().collect()
    }

    fn scope_items(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_ref()
            .map_or("", |t| self.text(t))
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// The `aud` values.
    pub fn audience(&self) -> impl Iterator<Item = &str> {
        let list: &[Text] = match &self.audience {
            Audience::One(t) => std::slice::from_ref(t),
            Audience::Many(ts) => ts,
        };
        list.iter().map(|t| self.text(t))
    }

    /// `exp`, unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// `iat`, unix seconds, if present.
    pub fn issued_at(&self) -> Option<i64> {
        self.issued_at
    }

    /// `jti`, if present.
    pub fn jti(&self) -> Option<&str> {
        self.jti.as_ref().map(|t| self.text(t))
    }

    /// Every claim as sent, including ones this crate does not interpret.
    pub fn claims(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.raw).unwrap_or_default()
    }

    /// The claims as the JSON text the token carried.
    pub fn raw_claims(&self) -> &str {
        &self.raw
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope_items().any(|s| s == scope)
    }

    /// `Ok` if the token carries `scope`, else [`VerifyError::InsufficientScope`].
    pub fn require_scope(&self, scope: &str) -> Result<(), ScopeError> {
        self.require_all([scope])
    }

    /// `Ok` if the token carries every one of `scopes`.
    pub fn require_all<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ScopeError> {
        let scopes: Vec<&str> = scopes.into_iter().collect();
        if scopes.iter().all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope {
                required: scopes.join(" "),
            })
        }
    }

    /// `Ok` if the token carries at least one of `scopes`.
    pub fn require_any<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ScopeError> {
        let scopes: Vec<&str> = scopes.into_iter().collect();
        if scopes.iter().any(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope {
                required: scopes.join(" "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_from_the_raw_text_or_copied_when_escaped() {
        let raw: Arc<str> = Arc::from(r#"{"client_id":"tc_1","scope":"a b a","jti":"j\u0031"}"#);
        let at = AccessToken {
            client_id: Text::of(&raw[14..18], &raw),
            subject: None,
            scope: Some(Text::of(&raw[29..34], &raw)),
            audience: Audience::Many(Box::new([])),
            expires_at: 1,
            issued_at: None,
            jti: Some(Text::of("j1", &raw)),
            raw: raw.clone(),
        };
        assert!(matches!(at.client_id, Text::Span(14, 18)));
        assert!(matches!(at.jti, Some(Text::Owned(_))));
        assert_eq!(at.client_id(), "tc_1");
        assert_eq!(at.subject(), "");
        assert_eq!(at.jti(), Some("j1"));
        assert_eq!(at.scopes(), BTreeSet::from(["a", "b"]));
        assert!(at.has_scope("b") && !at.has_scope("c") && !at.has_scope(""));
        assert_eq!(at.audience().count(), 0);
    }
}
