//! The request side of the OAuth endpoints, parsed once: the form body (size limit, content type
//! and strict form parsing, each rejection an RFC 6749 error), the `Authorization` header, and
//! the request's origin. Handlers take these and call the service.

use std::pin::Pin;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use futures_core::Stream as _;

use super::{ApiError, BodyRules, Peer};
use crate::authority::Origin;
use crate::oauth::client_auth::Authorization;
use crate::oauth::OAuthError;

/// A form-encoded OAuth request body parsed into `T` (RFC 6749 §4.4.2, RFC 7009 §2.1,
/// RFC 7662 §2.1). Reading the body costs an unauthenticated caller more than the server:
/// - a transfer coding other than `chunked` is 501 (RFC 9112 §6.1), before anything is read;
/// - a `Content-Length` over the limit is 413 at once, so an `Expect: 100-continue` client is
///   never told to send it (RFC 9110 §10.1.1);
/// - the body is read into one buffer of at most the limit (no per-chunk allocations kept), and
///   past the limit it is 413;
/// - the whole body must arrive within the body timeout, counted from the end of the head: a
///   total deadline, so a drip of bytes cannot extend it; past it 408;
/// - those three close the connection;
/// - another content type or a malformed form is `invalid_request`.
pub(super) struct OAuthForm<T>(pub T);

/// A request type parsed from an `application/x-www-form-urlencoded` body.
pub(super) trait FromForm: Sized {
    /// Parse the raw body.
    fn from_form(body: &[u8]) -> Result<Self, OAuthError>;
}

impl<S, T> FromRequest<S> for OAuthForm<T>
where
    S: Send + Sync,
    T: FromForm,
    BodyRules: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let rules = BodyRules::from_ref(state);
        let deadline = tokio::time::Instant::now() + rules.timeout;
        let headers = req.headers();
        if !transfer_codings_understood(headers) {
            return Err(ApiError::with_status(
                StatusCode::NOT_IMPLEMENTED,
                OAuthError::invalid_request("unsupported transfer coding (only chunked)"),
            )
            .closing());
        }
        let too_large = || {
            ApiError::with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                OAuthError::invalid_request("request body too large"),
            )
            .closing()
        };
        let declared = match headers.get(header::CONTENT_LENGTH) {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| OAuthError::invalid_request("malformed Content-Length"))?,
            ),
            None => None,
        };
        if declared.is_some_and(|n| n > rules.max_bytes as u64) {
            return Err(too_large());
        }
        let content_type_ok = is_form(headers);
        let capacity = declared.map_or(1024, |n| n as usize).min(rules.max_bytes);
        let mut buf: Vec<u8> = Vec::with_capacity(capacity);
        let mut stream = req.into_body().into_data_stream();
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx));
            match tokio::time::timeout_at(deadline, next).await {
                Err(_) => {
                    return Err(ApiError::with_status(
                        StatusCode::REQUEST_TIMEOUT,
                        OAuthError::invalid_request("request body not received in time"),
                    )
                    .closing())
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    return Err(ApiError::from(OAuthError::invalid_request(
                        "could not read the request body",
                    ))
                    .closing())
                }
                Ok(Some(Ok(chunk))) => {
                    if buf.len() + chunk.len() > rules.max_bytes {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
        if !content_type_ok {
            return Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            )
            .into());
        }
        Ok(Self(T::from_form(&buf)?))
    }
}

/// RFC 9112 §6.1: `chunked` is the only transfer coding this server understands.
fn transfer_codings_understood(headers: &HeaderMap) -> bool {
    headers.get_all(header::TRANSFER_ENCODING).iter().all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .all(|coding| coding.eq_ignore_ascii_case("chunked"))
        })
    })
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The request's `Authorization` header: none, one, or several (which client authentication
/// refuses as `invalid_request`).
pub(super) struct AuthorizationHeader(pub Authorization);

impl<S: Send + Sync> FromRequestParts<S> for AuthorizationHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
        Ok(Self(match (values.next(), values.next()) {
            (None, _) => Authorization::None,
            (Some(one), None) => Authorization::One(one.as_bytes().to_vec()),
            (Some(_), Some(_)) => Authorization::Several,
        }))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let service = parts
            .headers
            .get("x-service-name")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(64).collect());
        Ok(Origin {
            source: parts.extensions.get::<Peer>().map(|p| p.0),
            service,
        })
    }
}
