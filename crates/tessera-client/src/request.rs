//! One token request on the wire (RFC 6749 §4.4.2, authenticated as `credential` says) and the
//! reading of its answer (§5.1 success, §5.2 error).

use std::sync::Arc;
use std::time::Duration;

use tessera_proto::{ErrorBody, TokenResponse};

use crate::{AccessToken, TokenError, TokenSource};

pub(crate) enum Attempt {
    Done(Result<AccessToken, TokenError>),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

impl TokenSource {
    pub(crate) async fn attempt(&self, url: &str) -> Attempt {
        let inner = &self.inner;
        let audience = inner.issuer.as_deref().unwrap_or(url);
        let wire = match inner.credential.wire(&inner.http, audience).await {
            Ok(w) => w,
            Err(TokenError::Assertion(e)) if e.is_transient() => {
                return Attempt::Retry {
                    reason: format!("assertion: {e}"),
                    after: None,
                }
            }
            Err(e) => return Attempt::Done(Err(e)),
        };
        let mut form = wire.form;
        if !inner.scopes.is_empty() {
            form.push(("scope", inner.scopes.join(" ")));
        }
        if let Some(a) = &inner.audience {
            form.push(("resource", a.clone()));
        }
        let mut req = inner.http.post(url).form(&form);
        if let Some((id, secret)) = wire.basic {
            req = req.basic_auth(id, Some(secret));
        }
        if let Some(name) = &inner.service_name {
            req = req.header("x-service-name", name);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            // The error text never contains a credential: reqwest prints neither headers nor
            // the form.
            Err(e) => {
                return Attempt::Retry {
                    reason: e.without_url().to_string(),
                    after: None,
                }
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    reason: e.without_url().to_string(),
                    after: None,
                }
            }
        };
        if status.is_success() {
            return Attempt::Done(parse_token(&body));
        }
        if status.is_server_error() {
            return Attempt::Retry {
                reason: format!("HTTP {status}"),
                after: retry_after,
            };
        }
        Attempt::Done(Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => TokenError::OAuth {
                status: status.as_u16(),
                code: e.error.into_owned(),
                description: e.error_description.map(|d| d.into_owned()),
            },
            Err(_) => TokenError::Protocol(format!("HTTP {status} without an RFC 6749 error body")),
        }))
    }
}

pub(crate) fn parse_token(body: &[u8]) -> Result<AccessToken, TokenError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| TokenError::Protocol(e.to_string()))?;
    let r: TokenResponse =
        serde_json::from_value(value.clone()).map_err(|e| TokenError::Protocol(e.to_string()))?;
    if !r.token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Protocol(format!(
            "token_type {} is not Bearer",
            r.token_type
        )));
    }
    // Without expires_in (it is only RECOMMENDED), assume a short lifetime rather than forever.
    let expires_in = Duration::from_secs(r.expires_in.unwrap_or(60).max(1));
    Ok(AccessToken {
        token: Arc::from(r.access_token),
        expires_in,
        scope: r.scope,
        response: Arc::new(value),
    })
}

/// application/x-www-form-urlencoded, as RFC 6749 §2.3.1 requires for Basic credentials.
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientSecret;

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c%d+é"), "a+b%3Ac%25d%2B%C3%A9");
        assert_eq!(form_encode("tss_AZaz09-_"), "tss_AZaz09-_");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = TokenSource::builder("id", ClientSecret::new("hunter2"))
            .token_url("http://x")
            .build()
            .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let t =
            parse_token(br#"{"access_token":"eyJsecret","token_type":"Bearer","expires_in":300}"#)
                .unwrap();
        assert!(!format!("{t:?}").contains("eyJsecret"));
        assert_eq!(t.expires_in, Duration::from_secs(300));
    }
}
