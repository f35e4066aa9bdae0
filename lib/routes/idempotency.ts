import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Principal } from '../auth/jwt.js'
import { viaCoordinator, type Coordinator } from '../coord/coordinator.js'
import { badRequest, conflict, idempotencyKeyReused } from '../errors.js'

/**
 * What an Idempotency-Key stands for (Stripe's semantics): the request it came with (`hash`), and
 * once known the turn it started: a stream to attach to, or the one-shot answer to send again.
 */
export interface IdempotencyRecord {
  hash: string
  stream?: string
  reply?: unknown
}

/** How often a request waits to see what the first request with its key became. */
const POLL_MS = 25

const KEY = /^[\x21-\x7e]{1,255}$/

/** The Idempotency-Key header, or null when none was sent. */
export function idempotencyKeyOf (req: IncomingMessage): string | null {
  const key = req.headers['idempotency-key']
  if (key === undefined) return null
  if (typeof key !== 'string' || !KEY.test(key)) throw badRequest('Idempotency-Key must be 1 to 255 visible ASCII characters')
  return key
}

/** Fingerprint of a request: the same key with a different one of these is refused. */
export function requestHash (route: string, agentId: string, body: unknown): string {
  return createHash('sha256').update(`${route}\0${agentId}\0${JSON.stringify(body)}`).digest('base64url')
}

/**
 * A key this request took: it runs the turn, then says what the turn became (or gives the key
 * up). Neither rejects: a coordinator failure is reported, and the turn goes on; requests
 * waiting on the key then stop at their bound (409), and the key expires with its TTL.
 */
export interface OwnedKey {
  settle: (outcome: { stream: string } | { reply: unknown }) => Promise<void>
  release: () => Promise<void>
}

export type Claim =
  | { owned: OwnedKey }
  | { record: IdempotencyRecord }
  | { gone: true }

export class Idempotency {
  readonly #coordinator: Coordinator
  readonly #ttlMs: number
  readonly #maxWaitMs: number
  readonly #onError: (err: unknown) => void

  constructor (coordinator: Coordinator, opts: { ttlMs: number, maxWaitMs: number, onError: (err: unknown) => void }) {
    this.#coordinator = coordinator
    this.#ttlMs = opts.ttlMs
    this.#maxWaitMs = opts.maxWaitMs
    this.#onError = opts.onError
  }

  /**
   * Takes the key, or waits until the request that holds it says what its turn became. A
   * request racing another with the same key thus attaches to that one's turn instead of
   * running its own; `gone` when the client left while waiting.
   */
  async claim (principal: Principal, key: string, hash: string, res: ServerResponse): Promise<Claim> {
    // Keys are the user's own: another user's (or org's) same key is another key.
    const scoped = `${principal.orgId}\0${principal.userId}\0${key}`
    const pending = JSON.stringify({ hash } satisfies IdempotencyRecord)
    const deadline = performance.now() + this.#maxWaitMs
    for (;;) {
      const held = await viaCoordinator(this.#coordinator.claimKey(scoped, pending, this.#ttlMs))
      if (held === null) {
        return {
          owned: {
            settle: async (outcome) => { await this.#coordinator.setKey(scoped, JSON.stringify({ hash, ...outcome })).catch(this.#onError) },
            release: async () => { await this.#coordinator.releaseKey(scoped).catch(this.#onError) }
          }
        }
      }
      const record = JSON.parse(held) as IdempotencyRecord
      if (record.hash !== hash) throw idempotencyKeyReused()
      if (record.stream !== undefined || record.reply !== undefined) return { record }
      if (res.destroyed) return { gone: true }
      // Its holder died before saying: the key expires with its TTL, and this request stops here.
      if (performance.now() > deadline) throw conflict('A request with this Idempotency-Key is still in progress')
      await sleep(POLL_MS)
    }
  }
}
