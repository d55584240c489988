// Verify Tessera tokens with Node resource-server libraries, set up as their READMEs show.
//
// Usage: node check_node.mjs INPUT.json   (packages from tests/interop/node_modules)
//
// INPUT.json (written by tests/e2e/interop.rs):
//   {"issuer", "jwks_uri", "well_known_jwks", "audience", "scope", "alg",
//    "tokens": {"valid", "tampered", "expired", "wrong_audience", "missing_scope"}}
//
// Prints one JSON object on stdout, the same shape as check_python.py's:
//   {"results": {library: {case: outcome}}, "reasons": {library: {case: reason}}}
// outcome: "accepted"; "refused" (the library refused the token with one of its own errors, or,
// for a library without a scope feature, the documented read of the `scope` claim did); or
// "error: ..." for anything else (a bug here, the server unreachable), which fails the Rust test.
// reason (refusals only): "<kind>: <the library's own message>", kind one of signature, expired,
// audience, scope, algorithm, other, read from the library's error class, code or status.
//
// Only 127.0.0.1 is contacted: the issuer's discovery and JWKS URLs, and the two local HTTP
// servers this script starts on 127.0.0.1:0 (express) or injects into (fastify).

// express-oauth2-jwt-bearer reads its defaults from these variables; the configuration below
// must be the only one in force. NODE_ENV=production would refuse the http:// issuer.
for (const v of ['ISSUER_BASE_URL', 'JWKS_URI', 'ISSUER', 'AUDIENCE', 'SECRET', 'TOKEN_SIGNING_ALG', 'NODE_ENV']) {
  delete process.env[v]
}

import { readFileSync } from 'node:fs'
import express from 'express'
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer'
import * as jose from 'jose'
import Fastify from 'fastify'
import fjwt from '@fastify/jwt'
import buildGetJwks from 'get-jwks'

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'))

class Refused extends Error {
  constructor (kind, detail) {
    super(`${kind}: ${detail}`)
    this.kind = kind
  }
}

function kindOf (message) {
  const m = String(message).toLowerCase()
  if (m.includes('signature')) return 'signature'
  if (m.includes('exp') && (m.includes('expired') || m.includes('timestamp'))) return 'expired'
  if (m.includes('aud')) return 'audience'
  if (m.includes('scope')) return 'scope'
  if (m.includes('alg') || m.includes('key type')) return 'algorithm'
  return 'other'
}

function scopeOf (claims) {
  return typeof claims.scope === 'string' ? claims.scope.split(' ') : []
}

// --- express-oauth2-jwt-bearer ---------------------------------------------------------------
//
// As its README sets it up: auth({ issuerBaseURL, audience }) (discovery at the issuer, which
// gives the JWKS URL and, from id_token_signing_alg_values_supported, the allowed algorithms)
// and requiredScopes(...) on the route; refusals are its UnauthorizedError subclasses (401
// invalid_token, 403 insufficient_scope), which express's error handler turns into the answer.
async function expressCheck () {
  const app = express()
  app.get(
    '/resource',
    auth({ issuerBaseURL: cfg.issuer, audience: cfg.audience }),
    requiredScopes(cfg.scope),
    (req, res) => res.json({ ok: true, sub: req.auth.payload.sub })
  )
  app.use((err, req, res, next) => {
    res.status(err.status || 500).json({ name: err.name, code: err.code, message: err.message })
  })
  const server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
    s.on('error', reject)
  })
  const url = `http://127.0.0.1:${server.address().port}/resource`
  const check = async (token) => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
    const body = await res.json()
    if (res.status === 200) return
    if (res.status === 401 || res.status === 403) {
      const kind = body.code === 'insufficient_scope' ? 'scope' : kindOf(body.message)
      throw new Refused(kind, `${res.status} ${body.code} (${body.message})`)
    }
    throw new Error(`unexpected ${res.status}: ${JSON.stringify(body)}`)
  }
  check.close = () => new Promise((resolve) => server.close(resolve))
  return check
}

// --- jose: jwtVerify with createRemoteJWKSet -------------------------------------------------
//
// As jose's docs set it up: createRemoteJWKSet(new URL(jwks_uri)) and jwtVerify(token, JWKS,
// { issuer, audience }). jose has no scope feature; its docs' way is to read the verified
// payload, so the `scope` claim (RFC 9068 §2.2.3, space-separated) is read here.
function joseCheck () {
  const JWKS = jose.createRemoteJWKSet(new URL(cfg.jwks_uri))
  return async (token) => {
    let payload
    try {
      ({ payload } = await jose.jwtVerify(token, JWKS, { issuer: cfg.issuer, audience: cfg.audience }))
    } catch (e) {
      if (!(e instanceof jose.errors.JOSEError)) throw e
      const kind = {
        ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'signature',
        ERR_JWT_EXPIRED: 'expired',
        ERR_JOSE_ALG_NOT_ALLOWED: 'algorithm',
        ERR_JOSE_NOT_SUPPORTED: 'algorithm'
      }[e.code] || (e.claim === 'aud' ? 'audience' : 'other')
      throw new Refused(kind, `${e.code} (${e.message})`)
    }
    if (!scopeOf(payload).includes(cfg.scope)) {
      throw new Refused('scope', `insufficient_scope (scope claim ${JSON.stringify(payload.scope)})`)
    }
  }
}

// --- @fastify/jwt with get-jwks ----------------------------------------------------------------
//
// As @fastify/jwt's README ("Verifying with JWKS", with get-jwks) sets it up: decode complete,
// `secret` a function that asks get-jwks for the PEM of the token's kid at the token's issuer
// (get-jwks reads {iss}/.well-known/jwks.json), request.jwtVerify() in an onRequest hook. Added
// from the same READMEs: get-jwks' issuersWhitelist (else any token's `iss` chooses the key
// server) and @fastify/jwt's verify.allowedIss / allowedAud. Neither has a scope feature: the
// route reads the `scope` claim of the verified token (request.user) and answers 403.
async function fastifyCheck () {
  const fastify = Fastify({ logger: false })
  const getJwks = buildGetJwks({ issuersWhitelist: [cfg.issuer] })
  fastify.register(fjwt, {
    decode: { complete: true },
    secret: (request, token) => {
      const { header: { kid, alg }, payload: { iss } } = token
      return getJwks.getPublicKey({ kid, domain: iss, alg })
    },
    verify: { allowedIss: cfg.issuer, allowedAud: cfg.audience }
  })
  fastify.addHook('onRequest', async (request, reply) => {
    try {
      await request.jwtVerify()
    } catch (err) {
      // Marks the answer as the library's refusal (whatever status it chose), as opposed to an
      // error in the route below.
      reply.header('x-refused-by', 'jwtVerify')
      reply.send(err)
    }
  })
  fastify.get('/resource', async (request, reply) => {
    const claims = request.user.payload ?? request.user
    if (!scopeOf(claims).includes(cfg.scope)) {
      return reply.code(403).send({ code: 'insufficient_scope', message: `scope claim ${JSON.stringify(claims.scope)}` })
    }
    return { ok: true }
  })
  await fastify.ready()
  const check = async (token) => {
    const res = await fastify.inject({ method: 'GET', url: '/resource', headers: { authorization: `Bearer ${token}` } })
    const body = res.json()
    if (res.statusCode === 200) return
    if (res.headers['x-refused-by'] === 'jwtVerify') {
      // A 401 with @fastify/jwt's code, or, when get-jwks itself throws (no PEM for an OKP key),
      // the 500 that fastify answers for an error without a status.
      const kind = body.code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' ? 'expired' : kindOf(body.message)
      throw new Refused(kind, `${res.statusCode} ${body.code ?? body.error} (${body.message})`)
    }
    if (res.statusCode === 403 && body.code === 'insufficient_scope') {
      throw new Refused('scope', `403 insufficient_scope (${body.message})`)
    }
    throw new Error(`unexpected ${res.statusCode}: ${res.body}`)
  }
  check.close = () => fastify.close()
  return check
}

const LIBRARIES = {
  'express-oauth2-jwt-bearer': expressCheck,
  jose: joseCheck,
  'fastify-jwt-get-jwks': fastifyCheck
}

const results = {}
const reasons = {}
for (const [name, make] of Object.entries(LIBRARIES)) {
  results[name] = {}
  reasons[name] = {}
  let check
  try {
    check = await make()
  } catch (e) {
    for (const c of Object.keys(cfg.tokens)) results[name][c] = `error: set-up failed: ${e.stack}`
    continue
  }
  for (const [c, token] of Object.entries(cfg.tokens)) {
    try {
      await check(token)
      results[name][c] = 'accepted'
    } catch (e) {
      if (e instanceof Refused) {
        results[name][c] = 'refused'
        reasons[name][c] = e.message
      } else {
        results[name][c] = `error: ${e.stack}`
      }
    }
  }
  if (check.close) await check.close()
}
process.stdout.write(JSON.stringify({ results, reasons }) + '\n')
