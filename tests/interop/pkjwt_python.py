"""Get a Tessera token with Authlib's private_key_jwt client authentication, on its defaults.

Usage (PYTHONPATH = tests/interop/.pydeps; run by tests/e2e/interop.rs):

  python3 pkjwt_python.py keygen DIR
      Makes two RSA-2048 key pairs with the `cryptography` package, as during a key rotation: an
      old one and the new one the client signs with. Writes DIR/authlib-key.pem (the new
      private key, PKCS#8, mode 0600) and DIR/authlib-jwks.json (both public keys, old first,
      without `kid`: Authlib's assertions carry none, so the server has to try each key).
      Prints {"private_key_file", "jwks_file"}.

  python3 pkjwt_python.py token INPUT.json
      INPUT.json: {"issuer", "client_id", "private_key_file", "scope"}.
      As Authlib's docs show: an OAuth2Session (its requests integration) with
      token_endpoint_auth_method="private_key_jwt" and PrivateKeyJWT(token_endpoint) registered,
      then fetch_token(token_endpoint, grant_type="client_credentials"). PrivateKeyJWT keeps
      its defaults: RS256, `aud` = the token endpoint URL, `exp` = `iat` + 3600, no `kid`.
      The request Authlib sent is captured with a requests response hook and its body posted
      again, unchanged (a replay of the same assertion). Then the token is introspected,
      revoked and introspected again through the same session (each call signs a new
      assertion).
      Prints {"versions", "token", "assertion": {"header", "claims"}, "replay": {"status",
      "body"}, "introspection", "revocation_status", "introspection_after_revocation"}.

Anything unexpected (an HTTP error from fetch_token included) ends the script with a traceback
and a non-zero exit, which fails the Rust test. Only the issuer on 127.0.0.1 is contacted.
"""

import base64
import json
import os
import sys
import urllib.parse
from importlib.metadata import version

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def b64url_uint(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(private_key):
    numbers = private_key.public_key().public_numbers()
    return {"kty": "RSA", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}


def keygen(directory):
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = new.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file = os.path.join(directory, "authlib-key.pem")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    jwks_file = os.path.join(directory, "authlib-jwks.json")
    with open(jwks_file, "w") as f:
        json.dump({"keys": [public_jwk(old), public_jwk(new)]}, f)
    return {"private_key_file": key_file, "jwks_file": jwks_file}


def decode_part(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def token(cfg):
    issuer = cfg["issuer"]
    token_endpoint = issuer + "/oauth/token"
    with open(cfg["private_key_file"]) as f:
        private_key = f.read()

    session = OAuth2Session(
        cfg["client_id"],
        private_key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        scope=cfg["scope"],
    )
    session.register_client_auth_method(PrivateKeyJWT(token_endpoint))
    sent = []
    session.hooks["response"].append(lambda response, *_, **__: sent.append(response.request))

    tok = session.fetch_token(token_endpoint, grant_type="client_credentials")

    # The token request as Authlib sent it (the only request so far).
    assert len(sent) == 1, f"expected one request, saw {len(sent)}"
    request = sent[0]
    assert request.url == token_endpoint, request.url
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    form = urllib.parse.parse_qs(body)
    assertion = form["client_assertion"][0]
    header_segment, claims_segment, _ = assertion.split(".")

    # The same body again, from a plain requests call: the same assertion, a second time.
    replay = requests.post(
        token_endpoint,
        data=body,
        headers={"Content-Type": request.headers["Content-Type"]},
        timeout=10,
    )

    introspect_url = issuer + "/oauth/introspect"
    revoke_url = issuer + "/oauth/revoke"
    introspection = session.introspect_token(introspect_url, token=tok["access_token"])
    revocation = session.revoke_token(revoke_url, token=tok["access_token"])
    after = session.introspect_token(introspect_url, token=tok["access_token"])

    return {
        "versions": {p: version(p) for p in ("authlib", "joserfc", "requests", "cryptography")},
        "token": dict(tok),
        "assertion": {
            "form_fields": sorted(form),
            "header": decode_part(header_segment),
            "claims": decode_part(claims_segment),
        },
        "replay": {"status": replay.status_code, "body": replay.json()},
        "introspection": {"status": introspection.status_code, "body": introspection.json()},
        "revocation_status": revocation.status_code,
        "introspection_after_revocation": {"status": after.status_code, "body": after.json()},
    }


def main():
    command, arg = sys.argv[1], sys.argv[2]
    if command == "keygen":
        report = keygen(arg)
    elif command == "token":
        with open(arg) as f:
            report = token(json.load(f))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
