import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAuthenticator, generateSecret } from './auth/jwt.js'
import { Orchestrator } from './chat/orchestrator.js'
import { ServerShutdownError, type StreamOutcome } from './chat/errors.js'
import { StreamRun } from './chat/stream-run.js'
import { isDevMode, resolveOptions, type ServerOptions, type ServerOptionsInput } from './config.js'
import { prepareDevSession, type DevSession } from './dev.js'
import { HttpError, quotaExceeded, serviceUnavailable } from './errors.js'
import { sendError } from './http/respond.js'
import { Router } from './http/router.js'
import { ConcurrencyLimiter } from './limits/concurrency.js'
import { BuiltinProvider } from './llm/builtin.js'
import { OpenAiProvider } from './llm/openai.js'
import type { LlmProvider } from './llm/provider.js'
import { agentRoutes } from './routes/agents.js'
import { chatRoutes } from './routes/chat.js'
import type { AppContext } from './routes/context.js'
import { SqliteStore, sqlitePathFromUrl } from './store/sqlite.js'
import type { Store } from './store/store.js'

/** Seams an embedding app may fill with its own implementations. */
export interface ServerDeps {
  llm?: LlmProvider
  store?: Store
  /** Receives unexpected errors; defaults to stderr. */
  onError?: (err: unknown) => void
  /** Called once per stream after all its resources were released. */
  onStreamEnd?: (info: StreamEndInfo) => void
}

export interface StreamEndInfo {
  id: string
  orgId: string
  outcome: StreamOutcome
}

export interface StreamInfo {
  id: string
  orgId: string
  state: string
  bufferedBytes: number
}

export interface AgentMemServer {
  readonly options: ServerOptions
  readonly http: http.Server
  readonly store: Store
  readonly llm: LlmProvider
  /** Set in local dev mode only. */
  readonly dev: DevSession | null
  readonly routes: Array<{ method: string, pattern: string }>
  listen: () => Promise<string>
  close: () => Promise<void>
  streams: () => StreamInfo[]
}

function createLlm (options: ServerOptions): LlmProvider {
  if (options.llmProvider === 'openai') {
    return new OpenAiProvider({ apiKey: options.openaiApiKey as string, baseURL: options.openaiBaseUrl, model: options.llmModel ?? 'gpt-4o-mini' })
  }
  return new BuiltinProvider({ tokenDelayMs: options.builtinTokenDelayMs })
}

export async function createServer (input: ServerOptionsInput = {}, deps: ServerDeps = {}): Promise<AgentMemServer> {
  const options = resolveOptions(input)
  const devSecret = isDevMode(options) ? generateSecret() : undefined
  const authenticate = createAuthenticator({
    secret: devSecret ?? options.jwtSecret,
    publicKeyPath: options.jwtPublicKey,
    issuer: options.jwtIssuer,
    audience: options.jwtAudience
  })
  const store = deps.store ?? new SqliteStore(sqlitePathFromUrl(options.databaseUrl))
  const llm = deps.llm ?? createLlm(options)
  const onError = deps.onError ?? ((err: unknown) => { console.error(err) })
  const dev = devSecret === undefined ? null : await prepareDevSession(store, devSecret, options)

  const limiter = new ConcurrencyLimiter({ maxPerTenant: options.streamMaxPerTenant, maxTotal: options.streamMaxTotal })
  const runs = new Set<StreamRun>()
  let drained: (() => void) | undefined
  const onRunEnd = (run: StreamRun, outcome: StreamOutcome): void => {
    runs.delete(run)
    deps.onStreamEnd?.({ id: run.id, orgId: run.orgId, outcome })
    if (runs.size === 0) drained?.()
  }
  const timeouts = {
    firstTokenMs: options.streamFirstTokenTimeoutMs,
    idleMs: options.streamIdleTimeoutMs,
    maxDurationMs: options.streamMaxDurationMs
  }
  const app: AppContext = {
    options,
    store,
    orchestrator: new Orchestrator({ store, llm }),
    authenticate,
    startRun: (orgId) => {
      const acquired = limiter.tryAcquire(orgId)
      if (!acquired.ok) throw quotaExceeded(acquired.scope, acquired.limit, 1)
      const run = new StreamRun({ orgId, lease: acquired.lease, timeouts, onEnd: onRunEnd })
      runs.add(run)
      return run
    }
  }

  const router = new Router()
  agentRoutes(router, app)
  chatRoutes(router, app)

  let closing = false
  const server = http.createServer(async (req, res) => {
    try {
      if (closing) throw serviceUnavailable('Server is shutting down')
      const { handler, params, query } = router.find(req.method as string, req.url as string)
      await handler({ req, res, params, query })
    } catch (err) {
      if (!(err instanceof HttpError)) onError(err)
      sendError(res, err)
    }
  })

  let closed: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closing = true
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
    if (runs.size > 0) {
      const allEnded = new Promise<void>((resolve) => { drained = resolve })
      for (const run of runs) run.abort(new ServerShutdownError())
      await allEnded
    }
    server.closeIdleConnections()
    await stopped
    await store.close()
  }

  return {
    options,
    http: server,
    store,
    llm,
    dev,
    routes: router.routes(),
    listen: async () => {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(options.port, options.host, () => {
          server.off('error', reject)
          resolve()
        })
      })
      const { address, port } = server.address() as AddressInfo
      return `http://${address.includes(':') ? `[${address}]` : address}:${port}`
    },
    close: async () => {
      closed ??= close()
      await closed
    },
    streams: () => [...runs].map((run) => ({ id: run.id, orgId: run.orgId, state: run.state.state, bufferedBytes: run.bufferedBytes }))
  }
}
