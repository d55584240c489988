//! Strict `application/x-www-form-urlencoded` parsing.
//!
//! RFC 6749 §3.2 forbids repeating a parameter, and a malformed percent-escape or non-UTF-8 text
//! is a malformed request, not something to guess about. The lenient parsers (which replace
//! broken escapes and invalid UTF-8 silently) would let two different byte strings authenticate as
//! the same credential, so this module rejects them instead.

use percent_encoding::percent_decode;

/// Why a form or form-encoded value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding")]
    BadPercent,
    /// The decoded bytes are not UTF-8.
    #[error("parameter is not valid UTF-8")]
    NotUtf8,
    /// A parameter appeared twice (RFC 6749 §3.2).
    #[error("parameter '{0}' is repeated")]
    Repeated(String),
    /// Raw bytes outside the encoded character set.
    #[error("form body contains raw non-ASCII or control bytes")]
    RawByte,
}

/// Decode one form-encoded component: `+` is a space, `%XX` a byte, the result UTF-8.
pub fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or(FormError::BadPercent)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(FormError::BadPercent);
            }
            i += 3;
            continue;
        }
        if !(0x21..=0x7E).contains(&b) {
            return Err(FormError::RawByte);
        }
        i += 1;
    }
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

/// Parse a form body into (name, value) pairs, rejecting repeated names except those listed in
/// `repeatable` (RFC 8707 allows several `resource` parameters).
pub fn parse(body: &[u8], repeatable: &[&str]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in body.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(eq) => (&part[..eq], &part[eq + 1..]),
            None => (part, &b""[..]),
        };
        let name = decode_component(name)?;
        let value = decode_component(value)?;
        if !repeatable.contains(&name.as_str()) && pairs.iter().any(|(n, _)| *n == name) {
            return Err(FormError::Repeated(name));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(decode_component(b"a+b%2Bc%3A").unwrap(), "a b+c:");
        assert_eq!(decode_component(b"%C3%A9").unwrap(), "é");
    }

    #[test]
    fn rejects_broken_input() {
        assert_eq!(decode_component(b"%zz"), Err(FormError::BadPercent));
        assert_eq!(decode_component(b"abc%4"), Err(FormError::BadPercent));
        assert_eq!(decode_component(b"%FF%FE"), Err(FormError::NotUtf8));
        assert_eq!(decode_component("é".as_bytes()), Err(FormError::RawByte));
        assert_eq!(decode_component(b"a b"), Err(FormError::RawByte));
    }

    #[test]
    fn rejects_repeats_but_allows_listed() {
        assert_eq!(parse(b"a=1&a=2", &[]), Err(FormError::Repeated("a".into())));
        assert_eq!(
            parse(b"resource=x&resource=y", &["resource"])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse(b"a=&b", &[]).unwrap(),
            vec![("a".into(), "".into()), ("b".into(), "".into())]
        );
    }
}
