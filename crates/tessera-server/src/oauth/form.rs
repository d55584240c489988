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
    check_component(raw)?;
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

/// Parse a form body, keeping only the parameters named in `known` (RFC 6749 §3.2: the server
/// MUST ignore unrecognized parameters, so an unknown one is neither decoded beyond its name
/// nor checked for repeats). A known parameter given twice is [`FormError::Repeated`], except
/// those also in `repeatable` (RFC 8707 allows several `resource` parameters).
///
/// Linear in the body: each pair's name is decoded once and compared with the (few) known
/// names, so a form of thousands of distinct names costs what a flat form of the same size does.
pub fn parse(
    body: &[u8],
    known: &[&'static str],
    repeatable: &[&str],
) -> Result<Vec<(&'static str, String)>, FormError> {
    parse_counting(body, known, repeatable, &mut 0)
}

/// [`parse`], adding the number of name comparisons made to `comparisons` (for the test that
/// keeps the parser linear).
fn parse_counting(
    body: &[u8],
    known: &[&'static str],
    repeatable: &[&str],
    comparisons: &mut usize,
) -> Result<Vec<(&'static str, String)>, FormError> {
    let mut pairs: Vec<(&'static str, String)> = Vec::new();
    // One bit per known name: seen already.
    let mut seen: u64 = 0;
    for part in body.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(eq) => (&part[..eq], &part[eq + 1..]),
            None => (part, &b""[..]),
        };
        // Most names carry no escape: compare their bytes as they are, with no allocation.
        let decoded;
        let name: &[u8] = if name.iter().any(|&b| b == b'%' || b == b'+') {
            decoded = decode_component(name)?;
            decoded.as_bytes()
        } else {
            check_component(name)?;
            name
        };
        let mut found = None;
        for (i, k) in known.iter().enumerate() {
            *comparisons += 1;
            if k.as_bytes() == name {
                found = Some((i, *k));
                break;
            }
        }
        let Some((i, k)) = found else {
            // Unknown: still well-formed (a broken escape anywhere makes the request malformed),
            // otherwise ignored.
            check_component(value)?;
            continue;
        };
        let bit = 1u64 << (i % 64);
        if seen & bit != 0 && !repeatable.contains(&k) {
            return Err(FormError::Repeated(k.to_owned()));
        }
        seen |= bit;
        pairs.push((k, decode_component(value)?));
    }
    Ok(pairs)
}

/// Check that a component is well-formed without decoding it.
fn check_component(raw: &[u8]) -> Result<(), FormError> {
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
    Ok(())
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
    fn rejects_repeated_known_names_only() {
        let known = &["a", "resource"];
        assert_eq!(
            parse(b"a=1&a=2", known, &[]),
            Err(FormError::Repeated("a".into()))
        );
        assert_eq!(
            parse(b"resource=x&resource=y", known, &["resource"])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse(b"a=&b", known, &[]).unwrap(),
            vec![("a", "".to_string())]
        );
        // Unknown parameters are ignored even when repeated (RFC 6749 §3.2), but must be
        // well-formed.
        assert_eq!(
            parse(b"x=1&x=2&a=3&x=4", known, &[]).unwrap(),
            vec![("a", "3".to_string())]
        );
        assert_eq!(parse(b"x=%zz&a=1", known, &[]), Err(FormError::BadPercent));
        // A percent-encoded known name is that name.
        assert_eq!(
            parse(b"%61=1&a=2", known, &[]),
            Err(FormError::Repeated("a".into()))
        );
    }

    /// Regression (issue 16): repeats were found by comparing each name with every earlier one,
    /// quadratic in the number of distinct names, before authentication. The work is now at most
    /// one comparison per pair and known name.
    #[test]
    fn parsing_work_grows_linearly_with_the_number_of_names() {
        let known = crate::oauth::grant::TOKEN_PARAMETERS;
        let form = |n: usize| {
            (0..n)
                .map(|i| format!("p{i}=v"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        };
        let work = |n: usize| {
            let mut c = 0;
            parse_counting(&form(n), known, &[], &mut c).unwrap();
            c
        };
        let (small, large) = (work(1_000), work(4_000));
        assert!(small <= 1_000 * known.len(), "{small}");
        assert_eq!(
            large,
            4 * small,
            "four times the names, four times the work"
        );
    }
}
