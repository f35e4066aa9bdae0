import t, { type Test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createSigner } from 'fast-jwt'
import { createAuthenticator, generateSecret, signToken } from '../lib/auth/jwt.js'

function pemFiles (t: Test): { dir: string, write: (name: string, pem: string) => string } {
  const dir = t.testdir()
  return { dir, write: (name, pem) => { const p = join(dir, name); writeFileSync(p, pem); return p } }
}

t.test('HS256 secret: sign, verify, principal from AgentMem claims', async (t) => {
  const secret = generateSecret()
  t.ok(secret.length >= 32)
  const auth = createAuthenticator({ secret })
  t.same(auth(`Bearer ${signToken(secret, { org: 'o1', sub: 'u1', roles: ['admin', 'user'], ttlMs: 60_000 })}`),
    { userId: 'u1', orgId: 'o1', roles: ['admin', 'user'], admin: true })
  t.equal(auth(`Bearer ${signToken(secret, { org: 'o1', sub: 'u1', roles: ['user'], ttlMs: 60_000 })}`).admin, false, 'admin only with an admin role')
  const custom = createAuthenticator({ secret, adminRoles: ['svc'] })
  t.equal(custom(`Bearer ${signToken(secret, { org: 'o1', sub: 'u1', roles: ['svc'], ttlMs: 60_000 })}`).admin, true)
  for (const [sub, org] of [['u\0x', 'o'], ['u', 'o\0x']]) {
    t.throws(() => auth(`Bearer ${createSigner({ key: secret, expiresIn: 60_000 })({ sub, org_id: org })}`), { status: 401, message: /NUL/ }, 'a NUL in an id claim names nobody')
  }
  t.same(auth(`Bearer ${createSigner({ key: secret, expiresIn: 60_000 })({ sub: 'u', org_id: 'o', roles: 'admin' })}`).roles, [], 'roles must be an array')
  t.same(auth(`Bearer ${createSigner({ key: secret, expiresIn: 60_000 })({ sub: 'u', org_id: 'o', roles: ['a', 3] })}`).roles, ['a'])
})

t.test('RS256 and ES256 public keys pin their algorithm; the key cannot be used as an HMAC secret', async (t) => {
  const { write } = pemFiles(t)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const rsaPub = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const rsaAuth = createAuthenticator({ publicKeyPath: write('rsa.pem', rsaPub) })
  const rsTok = createSigner({ key: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'RS256', expiresIn: 60_000 })({ sub: 'u', org_id: 'o' })
  t.equal(rsaAuth(`Bearer ${rsTok}`).orgId, 'o')
  // Algorithm confusion: HS256 signed with the public key's PEM as the secret.
  const confused = createSigner({ key: rsaPub, algorithm: 'HS256', expiresIn: 60_000 })({ sub: 'u', org_id: 'o' })
  t.throws(() => rsaAuth(`Bearer ${confused}`), { status: 401 })

  const ecAuth = createAuthenticator({ publicKeyPath: write('ec.pem', ec.publicKey.export({ type: 'spki', format: 'pem' }).toString()) })
  const esTok = createSigner({ key: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'ES256', expiresIn: 60_000 })({ sub: 'u', org_id: 'o' })
  t.equal(ecAuth(`Bearer ${esTok}`).userId, 'u')
  t.throws(() => ecAuth(`Bearer ${rsTok}`), { status: 401 })

  const ed = generateKeyPairSync('ed25519')
  t.throws(() => createAuthenticator({ publicKeyPath: write('ed.pem', ed.publicKey.export({ type: 'spki', format: 'pem' }).toString()) }), /RSA or P-256 EC public key, got ed25519/)
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
  t.throws(() => createAuthenticator({ publicKeyPath: write('p384.pem', p384.publicKey.export({ type: 'spki', format: 'pem' }).toString()) }), /got ec/)
})

t.test('a verified token is remembered, up to its exp and no later, for at most 1,000 tokens', async (t) => {
  const secret = generateSecret()
  const auth = createAuthenticator({ secret })
  const sign = createSigner({ key: secret })
  const exp = Math.floor(Date.now() / 1000) + 1
  const token = sign({ sub: 'u', org_id: 'o', roles: ['user'], exp })
  const first = auth(`Bearer ${token}`)
  t.equal(auth(`bearer   ${token}`), first, 'the same token gets the principal verified before')
  t.ok(Object.isFrozen(first) && Object.isFrozen(first.roles), 'shared by every request with the token, so nobody may change it')
  t.not(auth(`Bearer ${sign({ sub: 'u', org_id: 'o', roles: ['user'], exp, n: 1 })}`), first, 'another token is verified on its own')
  await sleep(exp * 1000 + 5 - Date.now())
  t.throws(() => auth(`Bearer ${token}`), { status: 401, message: 'Token expired' }, 'past its exp the remembered token is refused as fast-jwt refuses it')

  const lasting = sign({ sub: 'u', org_id: 'o', exp: exp + 3600 })
  const kept = auth(`Bearer ${lasting}`)
  for (let i = 0; i < 999; i++) auth(`Bearer ${sign({ sub: 'u', org_id: 'o', exp: exp + 3600, i })}`)
  t.equal(auth(`Bearer ${lasting}`), kept, 'among the 1,000 newest it is still remembered')
  for (let i = 0; i < 1000; i++) auth(`Bearer ${sign({ sub: 'u', org_id: 'o', exp: exp + 3600, j: i })}`)
  const again = auth(`Bearer ${lasting}`)
  t.not(again, kept, 'pushed out by 1,000 newer ones, it is verified again')
  t.same(again, kept)
})
