import type { Test } from 'tap'
import { createServer, type AgentMemServer, type ServerDeps } from '../../lib/server.js'
import type { ServerOptionsInput } from '../../lib/config.js'
import { signToken } from '../../lib/auth/jwt.js'
import { StreamClient, request, type RequestOptions } from './sse-client.js'

export const SECRET = 'test-secret-that-is-at-least-32-characters'

export interface TestApp {
  app: AgentMemServer
  url: string
  token: (org: string, sub?: string) => string
  createAgent: (org: string, fields?: Record<string, unknown>) => Promise<string>
  /** POST a chat stream as `org` to `agentId`. */
  stream: (org: string, agentId: string, body: unknown, opts?: RequestOptions) => StreamClient
  /** A complete JSON request as `org`. */
  call: (org: string, method: string, path: string, body?: unknown) => Promise<{ status: number, body: Record<string, unknown>, client: StreamClient }>
}

export async function startApp (t: Test, options: ServerOptionsInput = {}, deps: ServerDeps = {}): Promise<TestApp> {
  const app = await createServer({
    port: 0,
    host: '127.0.0.1',
    jwtSecret: SECRET,
    databaseUrl: 'sqlite::memory:',
    builtinTokenDelayMs: 0,
    // Most tests want the simple lifecycle: a client that leaves ends its stream, close ends all at once.
    streamDetachGraceMs: 0,
    logLevel: 'silent',
    shutdownGraceMs: 0,
    ...options
  }, deps)
  const url = await app.listen()
  t.teardown(async () => { await app.close() })
  const token = (org: string, sub = 'user-1'): string => signToken(SECRET, { org, sub, ttlMs: 60_000 })
  const call: TestApp['call'] = async (org, method, path, body) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token(org)}` }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const client = await request(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: client.status, body: client.raw === '' ? {} : JSON.parse(client.raw), client }
  }
  return {
    app,
    url,
    token,
    call,
    createAgent: async (org, fields = {}) => {
      const { status, body } = await call(org, 'POST', '/api/v1/agents', { name: 'test agent', ...fields })
      if (status !== 201) throw new Error(`create agent failed: ${status}`)
      return (body.data as { id: string }).id
    },
    stream: (org, agentId, body, opts = {}) => new StreamClient(`${url}/api/v1/agents/${agentId}/chat/stream`, {
      method: 'POST',
      ...opts,
      // A header given as '' is left out, so a test can drop a default one.
      headers: Object.fromEntries(Object.entries({ 'content-type': 'application/json', authorization: `Bearer ${token(org)}`, ...opts.headers })
        .filter(([, v]) => v !== '')),
      body: typeof body === 'string' ? body : JSON.stringify(body)
    })
  }
}
