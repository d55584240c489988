// Get a Tessera token with openid-client v6 (on oauth4webapi) authenticating with private_key_jwt.
//
// Usage (packages from tests/interop/node_modules; run by tests/e2e/interop.rs):
//
//   node pkjwt_node.mjs keygen ALG DIR [KID]
//     ALG is ES256 (P-256) or Ed25519. Makes the key pair with WebCrypto
//     (crypto.subtle.generateKey) and writes DIR/<alg>-private.jwk.json (the private key as a
//     JWK, mode 0600) and DIR/<alg>-jwks.json (the public key alone, as a JWKS, with `kid` KID
//     when given, else none). Prints {"private_jwk_file", "jwks_file"}.
//
//   node pkjwt_node.mjs token INPUT.json
//     INPUT.json: {"issuer", "client_id", "private_jwk_file", "kid" (or null), "scope",
//                  "header_algs": [null | "EdDSA" | "Ed25519", ...]}
//     As openid-client's docs show: client.discovery(new URL(issuer), clientId, {},
//     client.PrivateKeyJwt(key), { execute: [client.allowInsecureRequests] }), then
//     client.clientCredentialsGrant(config, { scope }). One grant per entry of header_algs:
//     null keeps the library's own choice; a name replaces the header's `alg` through
//     openid-client's modifyAssertion hook (for Ed25519, whose signature is the same whichever
//     of the two names the header carries, so both names are exercised whatever this version
//     picks). The requests are captured through openid-client's customFetch, and the body of
//     the last token request is posted again, unchanged (a replay of the same assertion).
//     Prints {"versions", "server_metadata", "grants": [{"header", "claims", "form_fields",
//     "token"}], "replay": {"status", "body"}}.
//
// Anything unexpected (a refused grant included) ends the script with the error on stderr and
// a non-zero exit, which fails the Rust test. Only the issuer on 127.0.0.1 is contacted.

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as client from 'openid-client'

function b64json (segment) {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
}

function packageVersion (name) {
  const file = new URL(`./node_modules/${name}/package.json`, import.meta.url)
  return JSON.parse(readFileSync(file, 'utf8')).version
}

const ALGORITHMS = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  Ed25519: { name: 'Ed25519' }
}

async function keygen (alg, dir, kid) {
  const algorithm = ALGORITHMS[alg]
  if (!algorithm) throw new Error(`unknown algorithm ${alg}`)
  const { privateKey, publicKey } = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])
  const publicJwk = await crypto.subtle.exportKey('jwk', publicKey)
  // WebCrypto adds `key_ops` and `ext`; a JWKS for registration carries the key alone.
  delete publicJwk.key_ops
  delete publicJwk.ext
  if (kid) publicJwk.kid = kid
  const privateJwkFile = join(dir, `${alg}-private.jwk.json`)
  const jwksFile = join(dir, `${alg}-jwks.json`)
  writeFileSync(privateJwkFile, JSON.stringify(await crypto.subtle.exportKey('jwk', privateKey)), { mode: 0o600, flag: 'wx' })
  writeFileSync(jwksFile, JSON.stringify({ keys: [publicJwk] }))
  return { private_jwk_file: privateJwkFile, jwks_file: jwksFile }
}

async function token (cfg) {
  const jwk = JSON.parse(readFileSync(cfg.private_jwk_file, 'utf8'))
  const algorithm = jwk.kty === 'OKP' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: jwk.crv }
  const key = await crypto.subtle.importKey('jwk', jwk, algorithm, false, ['sign'])
  const privateKey = cfg.kid ? { key, kid: cfg.kid } : key

  // Every request openid-client makes, through its customFetch hook.
  const sent = []
  const capture = (url, options) => {
    sent.push({ url, method: options.method, body: options.body === undefined ? undefined : String(options.body) })
    return fetch(url, options)
  }

  const grants = []
  let metadata
  for (const headerAlg of cfg.header_algs) {
    const options = headerAlg
      ? { [client.modifyAssertion]: (header) => { header.alg = headerAlg } }
      : undefined
    const config = await client.discovery(
      new URL(cfg.issuer),
      cfg.client_id,
      {},
      client.PrivateKeyJwt(privateKey, options),
      { execute: [client.allowInsecureRequests], [client.customFetch]: capture }
    )
    metadata = config.serverMetadata()
    const tok = await client.clientCredentialsGrant(config, { scope: cfg.scope })
    const request = sent.filter((r) => r.method === 'POST').at(-1)
    if (request.url !== metadata.token_endpoint) throw new Error(`token request went to ${request.url}`)
    const form = new URLSearchParams(request.body)
    const [h, c] = form.get('client_assertion').split('.')
    grants.push({
      header_alg_override: headerAlg,
      header: b64json(h),
      claims: b64json(c),
      form_fields: [...new Set(form.keys())].sort(),
      token: {
        access_token: tok.access_token,
        token_type: tok.token_type,
        expires_in: tok.expiresIn(),
        scope: tok.scope
      }
    })
  }

  // The last token request's body again, unchanged: the same assertion a second time.
  const last = sent.filter((r) => r.method === 'POST').at(-1)
  const replay = await fetch(last.url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: last.body
  })

  return {
    versions: {
      'openid-client': packageVersion('openid-client'),
      oauth4webapi: packageVersion('oauth4webapi'),
      node: process.versions.node
    },
    server_metadata: {
      issuer: metadata.issuer,
      token_endpoint: metadata.token_endpoint,
      token_endpoint_auth_methods_supported: metadata.token_endpoint_auth_methods_supported,
      token_endpoint_auth_signing_alg_values_supported: metadata.token_endpoint_auth_signing_alg_values_supported
    },
    grants,
    replay: { status: replay.status, body: await replay.json() }
  }
}

const [command, ...args] = process.argv.slice(2)
let report
if (command === 'keygen') {
  report = await keygen(args[0], args[1], args[2])
} else if (command === 'token') {
  report = await token(JSON.parse(readFileSync(args[0], 'utf8')))
} else {
  throw new Error(`unknown command ${command}`)
}
process.stdout.write(JSON.stringify(report) + '\n')
