import type { Test } from 'tap'
import { createServer, type AgentMemServer, type ServerDeps, type StreamEndInfo } from '../../lib/server.js'
import { FakeOpenAI, startUpstream } from './upstream.js'
import type { ServerOptionsInput } from '../../lib/config.js'
import { signToken } from '../../lib/auth/jwt.js'
import { StreamClient, request, type RequestOptions } from './sse-client.js'

export const SECRET = 'test-secret-that-is-at-least-32-characters'
/** Outside dev mode /metrics needs a token: every test server has this one. */
export const METRICS_TOKEN = 'test-metrics-token-0123456789'

/** GET /metrics with the test servers' token. */
export async function scrape (url: string): Promise<string> {
  const res = await request(`${url}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
  if (res.status !== 200) throw new Error(`metrics answered ${res.status}`)
  return res.raw
}

export interface TestApp {
  app: AgentMemServer
  url: string
  token: (org: string, sub?: string, roles?: string[]) => string
  createAgent: (org: string, fields?: Record<string, unknown>) => Promise<string>
  /** POST a chat stream as `org` to `agentId`. */
  stream: (org: string, agentId: string, body: unknown, opts?: RequestOptions) => StreamClient
  /** A complete JSON request as `org`. */
  call: (org: string, method: string, path: string, body?: unknown) => Promise<{ status: number, body: Record<string, unknown>, client: StreamClient }>
  /** The same, as a principal of your choosing (another user, an admin). */
  callAs: (who: { org: string, sub: string, roles?: string[] }, method: string, path: string, body?: unknown) => Promise<{ status: number, body: Record<string, unknown>, client: StreamClient }>
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
    metricsToken: METRICS_TOKEN,
    ...options
  }, deps)
  const url = await app.listen()
  t.teardown(async () => { await app.close() })
  const token = (org: string, sub = 'user-1', roles: string[] = []): string => signToken(SECRET, { org, sub, roles, ttlMs: 60_000 })
  const callAs: TestApp['callAs'] = async (who, method, path, body) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token(who.org, who.sub, who.roles)}` }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const client = await request(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: client.status, body: client.raw === '' ? {} : JSON.parse(client.raw), client }
  }
  const call: TestApp['call'] = async (org, method, path, body) => await callAs({ org, sub: 'user-1' }, method, path, body)
  return {
    app,
    url,
    token,
    call,
    callAs,
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

export interface AppWithUpstream extends TestApp {
  upstream: FakeOpenAI
  /** Every stream's end, as onStreamEnd reports it. */
  ends: StreamEndInfo[]
  /** An agent of org-a. */
  agentId: string
}

/** A test server whose LLM is a FakeOpenAI of its own (through the real openai SDK), with an agent of org-a. */
export async function startAppWithUpstream (t: Test, options: ServerOptionsInput = {}, deps: ServerDeps = {}, agent: Record<string, unknown> = {}): Promise<AppWithUpstream> {
  const upstream = await startUpstream(t)
  const ends: StreamEndInfo[] = []
  const app = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'sk-test', openaiBaseUrl: upstream.url, ...options }, { onStreamEnd: (e) => ends.push(e), ...deps })
  return { ...app, upstream, ends, agentId: await app.createAgent('org-a', agent) }
}
