//! RFC 6749 §3.3 scopes.

use std::fmt;

/// One scope token: `1*( %x21 / %x23-5B / %x5D-7E )` (printable ASCII without space, `"` and `\`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    /// Parse one scope token.
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        let valid = !s.is_empty()
            && s.len() <= 256
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidScope)
        }
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The text was not a valid scope or scope list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed scope: scope tokens are printable ASCII without space, '\"' or '\\', separated by single spaces")]
pub struct InvalidScope;

/// A set of scopes, kept sorted so that responses and tokens are deterministic. Held as a
/// sorted, deduplicated shared slice: a client has a few scopes, a million clients in memory
/// should not each carry a B-tree node, and clients with the same scopes share one copy (the
/// store interns them when it loads the registry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(std::sync::Arc<[Scope]>);

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        let mut v: Vec<Scope> = iter.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        Self(v.into())
    }
}

impl ScopeSet {
    /// Parse the RFC 6749 `scope` parameter: tokens separated by single spaces.
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        s.split(' ').map(Scope::parse).collect()
    }

    /// Build from individual scope strings (as the CLI takes them).
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        tokens
            .into_iter()
            .map(|t| Scope::parse(t.as_ref()))
            .collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.binary_search(scope).is_ok()
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.contains(s))
    }

    /// The scopes of `self` that are not in `other`.
    pub fn difference<'a>(&'a self, other: &'a ScopeSet) -> impl Iterator<Item = &'a Scope> {
        self.0.iter().filter(move |s| !other.contains(s))
    }

    /// Iterate in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Add one scope.
    pub fn insert(&mut self, scope: Scope) {
        if !self.contains(&scope) {
            *self = self
                .0
                .iter()
                .cloned()
                .chain(std::iter::once(scope))
                .collect();
        }
    }

    /// Add all scopes of `other`.
    pub fn extend(&mut self, other: &ScopeSet) {
        *self = self.0.iter().chain(other.0.iter()).cloned().collect();
    }
}

impl fmt::Display for ScopeSet {
    /// The space-separated wire form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in self.0.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc6749_scope_lists() {
        let s = ScopeSet::parse("b a s2s:internal").unwrap();
        assert_eq!(s.to_string(), "a b s2s:internal");
        for bad in ["", " a", "a ", "a  b", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(ScopeSet::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn subset_rules() {
        let allowed = ScopeSet::parse("a b c").unwrap();
        assert!(ScopeSet::parse("a c").unwrap().is_subset(&allowed));
        assert!(!ScopeSet::parse("a d").unwrap().is_subset(&allowed));
    }
}
