//! Roles: the names a service authorizes by, each granted by scopes or by claim values, so that
//! handlers ask for `ADMIN` and the mapping from each issuer's vocabulary lives in one place.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::ConfigError;
use crate::token::{AccessToken, Name};

/// Which roles a principal holds. A role is granted by **any** of its grants: a scope the token
/// carries, or a claim that contains a value (a string claim equal to it, or an array claim
/// with a string element equal to it). Nothing else is granted: a role the map does not define
/// is held by no one.
///
/// From code:
///
/// ```
/// use tessera_verifier::RoleMap;
///
/// let roles = RoleMap::new()
///     .role("ADMIN", |r| r.scope("s2s:admin").claim("groups", "git-admins"))
///     .role("READER", |r| r.scope("s2s:read").claim("/realm_access/roles", "reader"));
/// ```
///
/// Or from a JSON document ([`RoleMap::from_json_file`], [`RoleMap::from_json_str`]):
///
/// ```json
/// {"roles": {
///   "ADMIN":  {"scopes": ["s2s:admin"], "claims": {"groups": ["git-admins"]}},
///   "READER": {"scopes": ["s2s:read"],  "claims": {"/realm_access/roles": ["reader"]}}
/// }}
/// ```
///
/// A claim name is a top-level claim, taken literally (so Auth0's namespaced
/// `https://example.com/roles` works), unless it starts with `/`: then it is an RFC 6901 JSON
/// pointer into the claims, for nested claims such as Keycloak's `/realm_access/roles` or
/// `/resource_access/orders/roles`. Values are compared exactly (case matters; a string claim
/// is not split at spaces).
///
/// Checking a role reads the token's scopes first; the claims text is read only when no scope
/// grants the role, and then once, for every claim the map names.
#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    roles: BTreeMap<String, Grants>,
    /// Every claim path a grant reads, each once.
    paths: Vec<ClaimPath>,
    /// The top-level claim names those paths start with, sorted, each with the indices of its
    /// paths in `paths`: what one pass over the claims looks for.
    tops: Vec<(Box<str>, Vec<usize>)>,
}

#[derive(Debug, Clone, Default)]
struct Grants {
    scopes: Vec<String>,
    /// (index in `RoleMap::paths`, value).
    claims: Vec<(usize, String)>,
}

/// A top-level claim name, then (for a JSON pointer) the keys or indices below it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimPath {
    top: String,
    rest: Vec<String>,
}

impl ClaimPath {
    /// `None`: a JSON pointer with a bad escape (`~` not followed by `0` or `1`) or no segment.
    fn parse(name: &str) -> Option<Self> {
        let Some(pointer) = name.strip_prefix('/') else {
            return Some(Self {
                top: name.into(),
                rest: Vec::new(),
            });
        };
        let mut segments = Vec::new();
        for raw in pointer.split('/') {
            // RFC 6901 §4: `~1` is `/`, `~0` is `~`, in that order.
            let mut seg = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    seg.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => seg.push('~'),
                    Some('1') => seg.push('/'),
                    _ => return None,
                }
            }
            segments.push(seg);
        }
        let mut segments = segments.into_iter();
        let top = segments.next()?;
        Some(Self {
            top,
            rest: segments.collect(),
        })
    }
}

/// What grants one role, built in [`RoleMap::role`]: any of these scopes or claim values.
#[derive(Debug, Clone, Default)]
pub struct RoleGrants {
    scopes: Vec<String>,
    claims: Vec<(String, String)>,
}

impl RoleGrants {
    /// A token carrying `scope` holds the role.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// A token whose claim `name` contains `value` holds the role: a string claim equal to
    /// `value`, or an array claim with a string element equal to it. `name` is a top-level
    /// claim, or an RFC 6901 JSON pointer when it starts with `/` (see [`RoleMap`]).
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.claims.push((name.into(), value.into()));
        self
    }
}

/// The JSON form (see [`RoleMap`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleMapFile {
    roles: BTreeMap<String, RoleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    claims: BTreeMap<String, Vec<String>>,
}

impl RoleMap {
    /// An empty map (no role is held by anyone).
    pub fn new() -> Self {
        Self::default()
    }

    /// Define `name` as granted by what `grants` adds (calling it again for the same name adds
    /// more grants). Names and values given in code are taken as given; a JSON pointer that
    /// does not parse never matches.
    pub fn role(
        mut self,
        name: impl Into<String>,
        grants: impl FnOnce(RoleGrants) -> RoleGrants,
    ) -> Self {
        let g = grants(RoleGrants::default());
        let mut claims = Vec::with_capacity(g.claims.len());
        for (claim, value) in g.claims {
            let Some(path) = ClaimPath::parse(&claim) else {
                continue;
            };
            claims.push((self.path_index(path), value));
        }
        let entry = self.roles.entry(name.into()).or_default();
        entry.scopes.extend(g.scopes);
        entry.claims.extend(claims);
        self
    }

    fn path_index(&mut self, path: ClaimPath) -> usize {
        if let Some(i) = self.paths.iter().position(|p| *p == path) {
            return i;
        }
        let i = self.paths.len();
        match self
            .tops
            .binary_search_by(|(t, _)| (**t).cmp(path.top.as_str()))
        {
            Ok(at) => self.tops[at].1.push(i),
            Err(at) => self.tops.insert(at, (path.top.as_str().into(), vec![i])),
        }
        self.paths.push(path);
        i
    }

    /// Read a role map from a JSON document (format in [`RoleMap`]). Unknown fields, a role
    /// with no grant, an empty or space-containing role name or scope, an empty claim name or
    /// value, and a bad JSON pointer are refused with [`ConfigError::RoleMap`].
    pub fn from_json_str(json: &str) -> Result<Self, ConfigError> {
        let file: RoleMapFile = serde_json::from_str(json).map_err(|e| ConfigError::RoleMap {
            role: None,
            reason: e.to_string(),
        })?;
        let mut map = Self::new();
        for (name, role) in file.roles {
            let bad = |reason: &str| ConfigError::RoleMap {
                role: Some(name.clone()),
                reason: reason.into(),
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(bad("a role name must be non-empty, without spaces"));
            }
            if role.scopes.is_empty() && role.claims.values().all(Vec::is_empty) {
                return Err(bad("no scope or claim grants this role"));
            }
            if role.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(bad("a scope must be non-empty, without spaces"));
            }
            for (claim, values) in &role.claims {
                if claim.is_empty() || values.iter().any(String::is_empty) {
                    return Err(bad("claim names and values must be non-empty"));
                }
                if ClaimPath::parse(claim).is_none() {
                    return Err(bad(&format!("claim {claim}: not an RFC 6901 JSON pointer")));
                }
            }
            map = map.role(name.clone(), |mut r| {
                for s in role.scopes {
                    r = r.scope(s);
                }
                for (claim, values) in role.claims {
                    for v in values {
                        r = r.claim(claim.clone(), v);
                    }
                }
                r
            });
        }
        Ok(map)
    }

    /// Read a role map from a JSON file (see [`RoleMap::from_json_str`]).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::RoleMap {
            role: None,
            reason: format!("{}: {e}", path.display()),
        })?;
        Self::from_json_str(&text)
    }

    /// Whether the map defines `role`.
    pub fn defines(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// The roles the map defines.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// Whether `token` holds `role`.
    pub fn grants(&self, token: &AccessToken, role: &str) -> bool {
        RoleCheck::new(self, token).grants(role) == Some(true)
    }

    /// Every role `token` holds.
    pub fn roles_of(&self, token: &AccessToken) -> BTreeSet<String> {
        let mut check = RoleCheck::new(self, token);
        self.roles
            .keys()
            .filter(|r| check.grants(r) == Some(true))
            .cloned()
            .collect()
    }
}

/// The roles of one token, worked out as they are asked for: scopes first, then (once) the
/// claims every grant of the map reads.
pub(crate) struct RoleCheck<'m, 't> {
    map: &'m RoleMap,
    token: &'t AccessToken,
    /// Per path of the map: the strings found there. Read at the first claim grant.
    claims: Option<Vec<Vec<Cow<'t, str>>>>,
}

impl<'m, 't> RoleCheck<'m, 't> {
    pub(crate) fn new(map: &'m RoleMap, token: &'t AccessToken) -> Self {
        Self {
            map,
            token,
            claims: None,
        }
    }

    /// `None`: the map does not define `role`.
    pub(crate) fn grants(&mut self, role: &str) -> Option<bool> {
        let g = self.map.roles.get(role)?;
        if g.scopes.iter().any(|s| self.token.has_scope(s)) {
            return Some(true);
        }
        if g.claims.is_empty() {
            return Some(false);
        }
        let (map, token) = (self.map, self.token);
        let found = self.claims.get_or_insert_with(|| collect(map, token));
        Some(
            g.claims
                .iter()
                .any(|(path, value)| found[*path].iter().any(|v| v == value)),
        )
    }
}

/// One pass over the claims text: the strings at every path of `map`. A claim named twice
/// counts as absent (which value a parser keeps differs), and claims that do not parse as
/// absent too: either way, no role comes of them.
fn collect<'t>(map: &RoleMap, token: &'t AccessToken) -> Vec<Vec<Cow<'t, str>>> {
    let mut de = serde_json::Deserializer::from_str(token.raw_claims());
    serde::Deserializer::deserialize_map(&mut de, Collect { map })
        .unwrap_or_else(|_| vec![Vec::new(); map.paths.len()])
}

struct Collect<'m> {
    map: &'m RoleMap,
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = Vec<Vec<Cow<'de, str>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut claims: A) -> Result<Self::Value, A::Error> {
        let map = self.map;
        let mut out = vec![Vec::new(); map.paths.len()];
        let mut seen = vec![false; map.tops.len()];
        while let Some(Name(key)) = claims.next_key()? {
            let Ok(t) = map.tops.binary_search_by(|(t, _)| (**t).cmp(&key)) else {
                claims.next_value::<IgnoredAny>()?;
                continue;
            };
            let indices = &map.tops[t].1;
            if std::mem::replace(&mut seen[t], true) {
                claims.next_value::<IgnoredAny>()?;
                for &i in indices {
                    out[i].clear();
                }
                continue;
            }
            if indices.iter().all(|&i| map.paths[i].rest.is_empty()) {
                // The usual case, a top-level string or list: borrowed, nothing else built.
                let Strings(found) = claims.next_value()?;
                if let Some((&last, others)) = indices.split_last() {
                    for &i in others {
                        out[i].clone_from(&found);
                    }
                    out[last] = found;
                }
            } else {
                let value: serde_json::Value = claims.next_value()?;
                for &i in indices {
                    let mut at = Some(&value);
                    for seg in &map.paths[i].rest {
                        at = at.and_then(|v| match v {
                            serde_json::Value::Object(o) => o.get(seg),
                            serde_json::Value::Array(a) => {
                                seg.parse::<usize>().ok().and_then(|n| a.get(n))
                            }
                            _ => None,
                        });
                    }
                    out[i] = match at {
                        Some(serde_json::Value::String(s)) => vec![Cow::Owned(s.clone())],
                        Some(serde_json::Value::Array(a)) => a
                            .iter()
                            .filter_map(|v| v.as_str().map(|s| Cow::Owned(s.to_owned())))
                            .collect(),
                        _ => Vec::new(),
                    };
                }
            }
        }
        Ok(out)
    }
}

/// The strings of a claim value: a string, or the string elements of an array; nothing for any
/// other value (which is not an error: a role is just not granted by it).
struct Strings<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Strings<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let StringOrList(shape) = StringOrList::deserialize(d)?;
        Ok(Strings(match shape {
            Shape::One(s) => vec![s],
            Shape::Many(l) => l,
            Shape::Other => Vec::new(),
        }))
    }
}

/// A claim that may be one string or a list of strings, anything else read as [`Shape::Other`]
/// rather than as an error (an array's non-string elements are skipped): role claims, and
/// `scp` (Entra ID sends a space-separated string, Okta and Hydra an array).
pub(crate) struct StringOrList<'a>(pub(crate) Shape<'a>);

/// What a [`StringOrList`] held; strings borrowed from the claims text when unescaped.
pub(crate) enum Shape<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
    Other,
}

/// One array element: a string, or nothing.
struct MaybeString<'a>(Option<Cow<'a, str>>);

/// Visits any JSON value: keeps a string, and when `LIST` the strings of an array; skips
/// everything else. By hand rather than `#[serde(untagged)]`, which buffers the value first.
struct Lenient<const LIST: bool>;

impl<'de, const LIST: bool> Visitor<'de> for Lenient<LIST> {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Shape::One(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Shape::One(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Shape::One(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if !LIST {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Shape::Other);
        }
        let mut list = Vec::new();
        while let Some(MaybeString(s)) = seq.next_element()? {
            list.extend(s);
        }
        Ok(Shape::Many(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StringOrList<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient::<true>).map(StringOrList)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MaybeString<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(MaybeString(match d.deserialize_any(Lenient::<false>)? {
            Shape::One(s) => Some(s),
            _ => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointers_unescape_and_plain_names_are_literal() {
        let p = ClaimPath::parse("/resource_access/a~1b~0c/roles").unwrap();
        assert_eq!(p.top, "resource_access");
        assert_eq!(p.rest, vec!["a/b~c".to_string(), "roles".into()]);
        let p = ClaimPath::parse("https://example.com/roles").unwrap();
        assert_eq!(p.top, "https://example.com/roles");
        assert!(p.rest.is_empty());
        assert!(ClaimPath::parse("/a~2").is_none());
    }
}
