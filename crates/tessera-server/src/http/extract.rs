//! The request side of the OAuth endpoints, parsed once: the form body (size limit, content type
//! and strict form parsing, each rejection an RFC 6749 error), the `Authorization` header, and
//! the request's origin. Handlers take these and call the service.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

use super::{ApiError, Peer};
use crate::authority::Origin;
use crate::oauth::client_auth::Authorization;
use crate::oauth::OAuthError;

/// A form-encoded OAuth request body parsed into `T` (RFC 6749 §4.4.2, RFC 7009 §2.1,
/// RFC 7662 §2.1): 413 over the body limit, `invalid_request` for another content type or a
/// malformed form.
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
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type_ok = is_form(req.headers());
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::with_status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    OAuthError::invalid_request("request body too large"),
                )
            } else {
                ApiError::from(OAuthError::invalid_request(
                    "could not read the request body",
                ))
            }
        })?;
        if !content_type_ok {
            return Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            )
            .into());
        }
        Ok(Self(T::from_form(&body)?))
    }
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
