import { createPublicKey, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createSigner, createVerifier, TokenError, type Algorithm } from 'fast-jwt'
import { unauthorized, type HttpError } from '../errors.js'
import { LookupCache } from '../store/lookup-cache.js'

/** Who is calling, from AgentMem's claims: `sub` (user), `org_id` (tenant), `roles`. */
export interface Principal {
  userId: string
  orgId: string
  roles: string[]
  /** Holds one of the configured admin roles: may act for every user of its org (see access.ts). */
  admin: boolean
}

export interface AuthOptions {
  secret?: string
  publicKeyPath?: string
  issuer?: string
  audience?: string
  /** Roles that may act for other users of their org. */
  adminRoles?: readonly string[]
}

export type Authenticate = (authorization: string | undefined) => Principal

interface Claims {
  exp?: unknown
  sub?: unknown
  org_id?: unknown
  roles?: unknown
}

/** The algorithm comes from the configured key, never from the token's header. */
function keyAndAlgorithms (opts: AuthOptions): { key: string, algorithms: Algorithm[] } {
  if (opts.secret !== undefined) return { key: opts.secret, algorithms: ['HS256'] }
  const pem = readFileSync(opts.publicKeyPath as string, 'utf8')
  const key = createPublicKey(pem)
  if (key.asymmetricKeyType === 'rsa') return { key: pem, algorithms: ['RS256'] }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { key: pem, algorithms: ['ES256'] }
  throw new Error(`JWT_PUBLIC_KEY must be an RSA or P-256 EC public key, got ${String(key.asymmetricKeyType)}`)
}

const BEARER = /^bearer +/i

/**
 * Principals of tokens verified lately, keyed by the token itself, each until its `exp` at the
 * latest: a client sends the same token with every request, and fast-jwt's own cache hashes the
 * token (SHA-256) at every lookup, which showed in the profile (some 2 µs a request). A token is
 * its own key, so no two tokens can share an entry. Bounded as fast-jwt's cache is by default.
 */
const VERIFIED_MAX = 1000
const VERIFIED_TTL_MS = 600_000

function reject (err: unknown): HttpError {
  if (err instanceof TokenError && err.code === TokenError.codes.expired) return unauthorized('Token expired')
  return unauthorized('Invalid token')
}

export function createAuthenticator (opts: AuthOptions): Authenticate {
  const { key, algorithms } = keyAndAlgorithms(opts)
  const adminRoles = new Set(opts.adminRoles ?? ['admin'])
  // fast-jwt checks iss/aud only when the token carries them, so configured ones must be required too.
  const requiredClaims = ['exp', 'sub', 'org_id']
  if (opts.issuer !== undefined) requiredClaims.push('iss')
  if (opts.audience !== undefined) requiredClaims.push('aud')
  const verify = createVerifier({
    key,
    algorithms,
    requiredClaims,
    allowedIss: opts.issuer,
    allowedAud: opts.audience
  })
  const verified = new LookupCache<Principal>(VERIFIED_TTL_MS, VERIFIED_MAX)
  return (authorization) => {
    // The scheme name is case-insensitive (RFC 9110 §11.1): `bearer x` is as good as `Bearer x`.
    const scheme = authorization === undefined ? null : BEARER.exec(authorization)
    if (scheme === null) throw unauthorized('Missing bearer token')
    const token = (authorization as string).slice(scheme[0].length).trim()
    const now = Date.now()
    const hit = verified.get(token, now)
    if (hit !== undefined) return hit.value
    let claims: Claims
    try {
      claims = verify(token)
    } catch (err) {
      throw reject(err)
    }
    const principal = principalOf(claims, adminRoles)
    // fast-jwt requires `exp` (a number of seconds) and accepts the token until that second.
    verified.set(token, principal, now, (claims.exp as number) * 1000)
    return principal
  }
}

/** Who the verified claims name; frozen, as one principal serves every request with its token. */
function principalOf (claims: Claims, adminRoles: ReadonlySet<string>): Principal {
  const { sub, org_id: orgId, roles } = claims
  if (typeof sub !== 'string' || sub === '' || typeof orgId !== 'string' || orgId === '') {
    throw unauthorized('Token must carry string claims sub and org_id')
  }
  // No store can keep a NUL in an id (PostgreSQL refuses it): such a token names nobody.
  if (sub.includes('\0') || orgId.includes('\0')) throw unauthorized('Token claims sub and org_id must not contain NUL')
  const roleList = Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : []
  return Object.freeze({ userId: sub, orgId, roles: Object.freeze(roleList) as string[], admin: roleList.some((r) => adminRoles.has(r)) })
}

export interface TokenClaims {
  org: string
  sub: string
  roles?: string[]
  ttlMs: number
}

export function signToken (secret: string, claims: TokenClaims, opts: Pick<AuthOptions, 'issuer' | 'audience'> = {}): string {
  const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: claims.ttlMs, iss: opts.issuer, aud: opts.audience })
  return sign({ sub: claims.sub, org_id: claims.org, roles: claims.roles ?? [] })
}

export function generateSecret (): string {
  return randomBytes(32).toString('base64url')
}
