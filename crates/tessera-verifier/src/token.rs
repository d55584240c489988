//! A verified access token.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::{RoleMap, VerifyError};

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

/// The granted scopes: RFC 9068's space-separated `scope`, or a list (an `scp` array, read only
/// when the verifier was told to: [`crate::VerifierBuilder::scopes_from_scp`]).
#[derive(Clone)]
pub(crate) enum Scopes {
    None,
    Joined(Text),
    List(Box<[Text]>),
}

/// A JSON object key or string, borrowed from the claims text when it has no escapes.
#[derive(Deserialize)]
pub(crate) struct Name<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

/// Why [`AccessToken::claim`] could not give a claim's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// The claim is there but its value is not of the asked type.
    #[error("claim {name}: {reason}")]
    Type {
        /// The claim's name.
        name: String,
        /// What did not fit.
        reason: String,
    },
    /// The claims name this claim twice: which value counts would depend on the parser, so
    /// neither does.
    #[error("claim {name} appears more than once")]
    Duplicate {
        /// The claim's name.
        name: String,
    },
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
    /// The `scope` claim, space-separated (RFC 9068 §2.2.3.1), or `scp`.
    pub(crate) scope: Scopes,
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
    pub(crate) fn without_claims(client_id: &str, scopes: &BTreeSet<String>) -> Self {
        Self {
            raw: Arc::from("{}"),
            subject: Some(Text::Owned(client_id.into())),
            client_id: Text::Owned(client_id.into()),
            scope: Scopes::List(
                scopes
                    .iter()
                    .map(|s| Text::Owned(s.as_str().into()))
                    .collect(),
            ),
            audience: Audience::Many(Box::new([])),
            expires_at: i64::MAX,
            issued_at: None,
            jti: None,
        }
    }

    /// The principal of a Tessera-managed API key, from Tessera's introspection answer (RFC 7662
    /// §2.2: `client_id`, `sub`, `scope`, `aud`, `exp`, `iat`, and the key's custom claims), so
    /// [`AccessToken::claim`] and role mappings read the key's claims as a token's. `None` when
    /// the answer lacks a client id.
    pub(crate) fn from_introspection(answer: &serde_json::Value) -> Option<Self> {
        let obj = answer.as_object()?;
        let client_id = obj.get("client_id")?.as_str()?.to_owned();
        let scope = obj
            .get("scope")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let audience = match obj.get("aud") {
            Some(serde_json::Value::String(a)) => Audience::One(Text::Owned(a.as_str().into())),
            Some(serde_json::Value::Array(list)) => Audience::Many(
                list.iter()
                    .filter_map(|a| a.as_str())
                    .map(|a| Text::Owned(a.into()))
                    .collect(),
            ),
            _ => Audience::Many(Box::new([])),
        };
        let mut claims = obj.clone();
        claims.remove("active");
        claims.remove("token_type");
        Some(Self {
            raw: Arc::from(serde_json::Value::Object(claims).to_string()),
            subject: Some(Text::Owned(client_id.as_str().into())),
            client_id: Text::Owned(client_id.into()),
            scope: Scopes::Joined(Text::Owned(scope.into())),
            audience,
            expires_at: obj.get("exp").and_then(|e| e.as_i64()).unwrap_or(i64::MAX),
            issued_at: obj.get("iat").and_then(|e| e.as_i64()),
            jti: None,
        })
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
        let (joined, list): (&str, &[Text]) = match &self.scope {
            Scopes::None => ("", &[]),
            Scopes::Joined(t) => (self.text(t), &[]),
            Scopes::List(ts) => ("", ts),
        };
        joined
            .split(' ')
            .chain(list.iter().map(|t| self.text(t)))
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

    /// Every claim as sent, including ones this crate does not interpret. This parses the whole
    /// claims text into a map; for one claim, [`AccessToken::claim`] is cheaper.
    pub fn claims(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.raw).unwrap_or_default()
    }

    /// The top-level claim `name`, as a `T`: `Ok(None)` when the token has no such claim.
    ///
    /// ```
    /// # fn f(at: &tessera_verifier::AccessToken) -> Result<(), tessera_verifier::ClaimError> {
    /// let groups: Vec<String> = at.claim("groups")?.unwrap_or_default();
    /// let tenant: Option<String> = at.claim("tid")?;
    /// # Ok(()) }
    /// ```
    ///
    /// The claims text is read in one pass with nothing built for the other claims (no map of
    /// `serde_json::Value`s); every call reads it again, so a handler wanting many claims may
    /// prefer a `#[derive(Deserialize)]` struct from [`AccessToken::raw_claims`]. A value that is
    /// not a `T` is [`ClaimError::Type`]; a name given twice is [`ClaimError::Duplicate`]. A
    /// principal that is not a JWT (a static API key) has no claims.
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ClaimError> {
        let mut de = serde_json::Deserializer::from_str(&self.raw);
        match serde::Deserializer::deserialize_map(
            &mut de,
            FindClaim {
                name,
                found: PhantomData,
            },
        ) {
            Ok(Some(Found::Once(v))) => Ok(Some(v)),
            Ok(Some(Found::Twice)) => Err(ClaimError::Duplicate { name: name.into() }),
            Ok(None) => Ok(None),
            Err(e) => Err(ClaimError::Type {
                name: name.into(),
                reason: e.to_string(),
            }),
        }
    }

    /// Whether `roles` grants this token `role` (see [`RoleMap`]); `false` for a role the map
    /// does not define.
    pub fn has_role(&self, roles: &RoleMap, role: &str) -> bool {
        roles.grants(self, role)
    }

    /// `Ok` if `roles` grants this token `role`, else [`VerifyError::MissingRole`] (403).
    pub fn require_role(&self, roles: &RoleMap, role: &str) -> Result<(), VerifyError> {
        if self.has_role(roles, role) {
            Ok(())
        } else {
            Err(VerifyError::MissingRole {
                required: role.into(),
            })
        }
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

enum Found<T> {
    Once(T),
    Twice,
}

/// Walks the top-level claims object, deserializing only the value named `name`.
struct FindClaim<'n, T> {
    name: &'n str,
    found: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> Visitor<'de> for FindClaim<'_, T> {
    type Value = Option<Found<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Name(key)) = map.next_key()? {
            if key != self.name {
                map.next_value::<IgnoredAny>()?;
            } else if found.is_some() {
                map.next_value::<IgnoredAny>()?;
                found = Some(Found::Twice);
            } else {
                found = Some(Found::Once(map.next_value::<T>()?));
            }
        }
        Ok(found)
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
            scope: Scopes::Joined(Text::of(&raw[29..34], &raw)),
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
        assert_eq!(at.claim::<String>("jti"), Ok(Some("j1".to_string())));
        assert_eq!(at.claim::<String>("missing"), Ok(None));
        assert!(matches!(
            at.claim::<u64>("scope"),
            Err(ClaimError::Type { ref name, .. }) if name == "scope"
        ));
    }

    #[test]
    fn a_claim_named_twice_is_refused_and_escaped_names_match() {
        let raw: Arc<str> = Arc::from(r#"{"g":"a","n":{"x":[1]},"\u0067":"b","k\u0065y":3}"#);
        let at = AccessToken::without_claims("x", &BTreeSet::new());
        let at = AccessToken { raw, ..at };
        assert_eq!(
            at.claim::<String>("g"),
            Err(ClaimError::Duplicate { name: "g".into() })
        );
        assert_eq!(at.claim::<u8>("key"), Ok(Some(3)));
        assert_eq!(
            at.claim::<serde_json::Value>("n"),
            Ok(Some(serde_json::json!({"x": [1]})))
        );
    }
}
