"""Verify Tessera tokens with Python resource-server libraries, set up as their docs show.

Usage: python3 check_python.py INPUT.json   (PYTHONPATH = tests/interop/.pydeps)

INPUT.json (written by tests/e2e/interop.rs):
  {"issuer", "jwks_uri", "well_known_jwks", "audience", "scope", "alg",
   "tokens": {"valid", "tampered", "expired", "wrong_audience", "missing_scope"}}

Prints one JSON object on stdout:
  {"results": {library: {case: outcome}}, "reasons": {library: {case: reason}}}
outcome:
  "accepted"     the library (and, for a library without a scope feature, the documented read of
                 the `scope` claim) let the token through;
  "refused"      the library refused it with one of its own errors (or that scope read did);
  "error: ..."   anything else (a bug in this script, the server unreachable, ...). The Rust test
                 fails on it: a broken script must never pass for a refusal.
reason (refusals only): "<kind>: <the library's own error>", kind one of signature, expired,
audience, scope, algorithm, other, read from the library's error class.

Only the issuer's own URLs (127.0.0.1) are contacted.
"""

import json
import sys
import urllib.request

import jwt
from authlib.oauth2.rfc6749 import ResourceProtector
from authlib.oauth2.rfc6750 import InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from joserfc.jwk import KeySet


class Refused(Exception):
    """A refusal by the library: `kind` (what the Rust test checks) and the library's message."""

    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


# joserfc's errors (Authlib's RFC 9068 validator wraps them) and PyJWT's, by kind.
KINDS = {
    "BadSignatureError": "signature",
    "InvalidSignatureError": "signature",
    "ExpiredTokenError": "expired",
    "ExpiredSignatureError": "expired",
    "InvalidAudienceError": "audience",
    "UnsupportedAlgorithmError": "algorithm",
    "InvalidAlgorithmError": "algorithm",
}


def kind_of(exc):
    name = type(exc).__name__
    if name == "InvalidClaimError" and "'aud'" in str(exc):
        return "audience"
    return KINDS.get(name, "other")


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


# --- Authlib: RFC 9068 JWTBearerTokenValidator behind a ResourceProtector -------------------
#
# As Authlib's docs (authlib.oauth2.rfc9068, "Resource Server") set it up: subclass
# JWTBearerTokenValidator, implement get_jwks() from the issuer's RFC 8414 metadata, register it
# on a ResourceProtector and require the scope there. Authlib's framework integrations (Flask,
# Django) call ResourceProtector.validate_request(scopes, request) for each request; this calls
# it directly with a minimal request carrying the Authorization header.


class TesseraValidator(JWTBearerTokenValidator):
    def get_jwks(self):
        if not hasattr(self, "_jwks"):
            metadata = get_json(self.issuer + "/.well-known/oauth-authorization-server")
            # KeySet.import_key_set: what Authlib's deprecation notice asks for instead of
            # returning the raw JSON (which it still accepts).
            self._jwks = KeySet.import_key_set(get_json(metadata["jwks_uri"]))
        return self._jwks


class Request:
    def __init__(self, token):
        self.headers = {"Authorization": "Bearer " + token}


def authlib_check(cfg):
    protector = ResourceProtector()
    protector.register_token_validator(
        TesseraValidator(issuer=cfg["issuer"], resource_server=cfg["audience"])
    )

    def check(token):
        try:
            protector.validate_request(scopes=[cfg["scope"]], request=Request(token))
        except InsufficientScopeError as e:
            raise Refused("scope", f"{e.error} ({e.get_error_description()})") from e
        except InvalidTokenError as e:
            # The validator raises invalid_token from joserfc's error, which says why.
            cause = e.__cause__
            kind = kind_of(cause) if cause else "other"
            raise Refused(kind, f"{e.error} ({type(cause).__name__}: {cause})") from e

    return check


# --- PyJWT: PyJWKClient + jwt.decode ----------------------------------------------------------
#
# As PyJWT's docs ("Retrieve RSA signing keys from a JWKS endpoint") set it up: PyJWKClient on the
# JWKS URL, get_signing_key_from_jwt, jwt.decode with the allowed algorithms, the audience and
# the issuer. PyJWT has no scope feature: the docs' way is to read the claims decode returns, so
# the `scope` claim (RFC 9068 §2.2.3, space-separated) is read here.


def pyjwt_check(cfg):
    jwks_client = jwt.PyJWKClient(cfg["jwks_uri"])

    def check(token):
        try:
            signing_key = jwks_client.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key,
                # Every algorithm Tessera signs with (its discovery lists the same three).
                algorithms=["RS256", "ES256", "EdDSA"],
                audience=cfg["audience"],
                issuer=cfg["issuer"],
            )
        except jwt.PyJWTError as e:
            raise Refused(kind_of(e), f"{type(e).__name__}: {e}") from e
        scope = claims.get("scope")
        if cfg["scope"] not in (scope.split(" ") if isinstance(scope, str) else []):
            raise Refused("scope", f"insufficient_scope (scope claim {scope!r})")

    return check


LIBRARIES = {"authlib": authlib_check, "pyjwt": pyjwt_check}


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    results, reasons = {}, {}
    for name, make in LIBRARIES.items():
        results[name], reasons[name] = {}, {}
        try:
            check = make(cfg)
        except Exception as e:  # noqa: BLE001 - reported, and fails the Rust test
            for case in cfg["tokens"]:
                results[name][case] = f"error: set-up failed: {type(e).__name__}: {e}"
            continue
        for case, token in cfg["tokens"].items():
            try:
                check(token)
                results[name][case] = "accepted"
            except Refused as e:
                results[name][case] = "refused"
                reasons[name][case] = str(e)
            except Exception as e:  # noqa: BLE001 - reported, and fails the Rust test
                results[name][case] = f"error: {type(e).__name__}: {e}"
    json.dump({"results": results, "reasons": reasons}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
