import http from 'node:http'
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { createAuthenticator, generateSecret } from './auth/jwt.js'
import { ApiKeyAuthenticator, requestAuthenticator } from './auth/api-keys.js'
import { Orchestrator } from './chat/orchestrator.js'
import { CancelledError, type StreamOutcome } from './stream/outcomes.js'
import type { RunObserver } from './stream/run.js'
import { createLogger, requestIdFrom, type Logger } from './observability/logger.js'
import { Metrics } from './observability/metrics.js'
import { metricsRoutes } from './routes/metrics.js'
import { uiRoutes } from './routes/ui.js'
import { buildOpenApi } from './openapi.js'
import { PACKAGE_VERSION } from './version.js'
import { commaList, isDevMode, resolveOptions, type ServerOptions, type ServerOptionsInput } from './config.js'
import { prepareDevSession, type DevSession } from './dev.js'
import { StreamSupervisor } from './stream/supervisor.js'
import type { Coordinator } from './coord/coordinator.js'
import { LocalCoordinator } from './coord/local.js'
import { RedisCoordinator } from './coord/redis.js'
import { badRequest, HttpError, payloadTooLarge, serviceUnavailable, upstreamError } from './errors.js'
import { answerClientError } from './http/client-error.js'
import { sendError, sendNoContent } from './http/respond.js'
import { Router } from './http/router.js'
import { ConcurrencyLimiter } from './limits/concurrency.js'
import { BuiltinProvider } from './llm/builtin.js'
import { OpenAiProvider } from './llm/openai.js'
import { UpstreamError, type Embedder, type JsonCapableProvider, type LlmProvider } from './llm/provider.js'
import type { MemoryExtractor } from './memory/extractor.js'
import { RuleBasedExtractor } from './memory/extractor.js'
import { LlmMemoryExtractor } from './memory/llm-extractor.js'
import { MemoryService } from './memory/service.js'
import { memoryRoutes } from './routes/memories.js'
import { createResumer, streamRoutes } from './routes/streams.js'
import { Idempotency } from './routes/idempotency.js'
import { Cors } from './http/cors.js'
import { healthRoutes } from './routes/health.js'
import { StreamRegistry } from './stream/registry.js'
import { ReplayBudget } from './stream/replay-log.js'
import { acceptsGzip } from './http/accept-encoding.js'
import { SseWriter } from './sse/writer.js'
import { frameEvent } from './sse/frame.js'
import { makeChunk, serializeChunk } from './protocol/chunk.js'
import { eventIdPrefix } from './stream/event-id.js'
import { KeepAliveTicker } from './sse/keep-alive.js'
import { builtinTools } from './tools/builtin.js'
import { ToolRegistry, type ToolDefinition } from './tools/registry.js'
import { agentRoutes } from './routes/agents.js'
import { apiKeyRoutes } from './routes/api-keys.js'
import { chatRoutes } from './routes/chat.js'
import type { AppContext } from './routes/context.js'
import { openStore } from './store/open.js'
import type { Store } from './store/store.js'

/** Seams an embedding app may fill with its own implementations. */
export interface ServerDeps {
  llm?: LlmProvider
  store?: Store
  /** Extra tools, offered to the model beside the built-in ones. */
  tools?: ToolDefinition[]
  extractor?: MemoryExtractor
  embedder?: Embedder
  /** Receives unexpected errors; defaults to the logger. */
  onError?: (err: unknown) => void
  /** A pino logger of your own; by default one at LOG_LEVEL on stdout. */
  logger?: Logger
  /** Called once per stream after all its resources were released. */
  onStreamEnd?: (info: StreamEndInfo) => void
  /** What instances share; by default Redis when `redisUrl` is set, else this process alone. */
  coordinator?: Coordinator
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
  readonly coordinator: Coordinator
  readonly llm: LlmProvider
  /** Set in local dev mode only. */
  readonly dev: DevSession | null
  readonly routes: Array<{ method: string, pattern: string }>
  listen: () => Promise<string>
  close: () => Promise<void>
  streams: () => StreamInfo[]
}

/** RFC 9112 §3.2.2: a request target in absolute form (`GET http://host/healthz`) is routed by its path. */
function originForm (url: string): string {
  if (url.startsWith('/')) return url
  const authority = /^https?:\/\/[^/?#]*/i.exec(url)
  if (authority === null) return url
  const rest = url.slice(authority[0].length)
  return rest.startsWith('/') ? rest : `/${rest}`
}

/** What a browser EventSource waits before reconnecting. */
const RETRY_MS = 1000


const LOST_MESSAGES = { producer_lost: 'The instance running this stream stopped', stream_lost: 'This stream\'s events were lost' }

/** The terminal event of a stream whose producer is gone, as every reader gets it. */
function lostFrame (streamId: string, seq: number, code: keyof typeof LOST_MESSAGES): string {
  return frameEvent(serializeChunk(makeChunk('error', { content: LOST_MESSAGES[code] }, { code })), { id: `${eventIdPrefix(streamId)}${seq}` })
}

async function openCoordinator (options: ServerOptions, onError: (err: unknown) => void, logger: Logger): Promise<Coordinator> {
  const limits = { maxPerTenant: options.streamMaxPerTenant, maxTotal: options.streamMaxTotal }
  if (options.redisUrl === undefined) return new LocalCoordinator(limits)
  return await RedisCoordinator.open({
    ...limits,
    url: options.redisUrl,
    keyPrefix: options.redisKeyPrefix,
    leaseTtlMs: options.redisLeaseTtlMs,
    resumeTtlMs: options.streamResumeTtlMs,
    maxDurationMs: options.streamMaxDurationMs,
    maxEvents: options.streamReplayMaxEvents,
    // Well inside the grace period, so one lost heartbeat does not end a stream somebody reads.
    heartbeatMs: Math.max(Math.floor(options.streamDetachGraceMs / 3), 100),
    // Readers check a quiet stream's producer this often, so a dead one is noticed soon after its lease expires.
    followBlockMs: Math.min(5000, Math.max(Math.floor(options.redisLeaseTtlMs / 3), 50)),
    lostFrame,
    onError,
    onOutage: (state, err) => {
      if (state === 'down') logger.warn({ err }, 'redis unreachable: new streams, remote resume and cancel answer 503 until it is back')
      else logger.info('redis reachable again')
    }
  })
}

function openAi (options: ServerOptions): OpenAiProvider {
  return new OpenAiProvider({
    apiKey: options.openaiApiKey as string,
    baseURL: options.openaiBaseUrl,
    model: options.llmModel,
    embeddingModel: options.embeddingModel
  })
}

function createLlm (options: ServerOptions): LlmProvider {
  if (options.llmProvider === 'openai') return openAi(options)
  return new BuiltinProvider({ tokenDelayMs: options.builtinTokenDelayMs })
}

/** A model that can answer in schema-constrained JSON extracts memories itself; otherwise the rules do. */
function createExtractor (llm: LlmProvider): MemoryExtractor {
  return 'completeJson' in llm ? new LlmMemoryExtractor(llm as JsonCapableProvider) : new RuleBasedExtractor()
}

export async function createServer (input: ServerOptionsInput = {}, deps: ServerDeps = {}): Promise<AgentMemServer> {
  const options = resolveOptions(input)
  const devSecret = isDevMode(options) ? generateSecret() : undefined
  const adminRoles = commaList(options.adminRoles)
  const jwtAuthenticate = createAuthenticator({
    secret: devSecret ?? options.jwtSecret,
    publicKeyPath: options.jwtPublicKey,
    issuer: options.jwtIssuer,
    audience: options.jwtAudience,
    adminRoles
  })
  const store = deps.store ?? await openStore(options.databaseUrl)
  const authenticate = requestAuthenticator(jwtAuthenticate, new ApiKeyAuthenticator(store, {
    cacheTtlMs: options.apiKeyCacheTtlMs, maxCached: 10_000, adminRoles: new Set(adminRoles)
  }))
  const llm = deps.llm ?? createLlm(options)
  const embedder = deps.embedder ?? (options.embeddingModel === undefined ? undefined : openAi(options))
  const memories = new MemoryService(store, embedder)
  const tools = new ToolRegistry(options.toolTimeoutMs)
  for (const tool of [...builtinTools, ...deps.tools ?? []]) tools.register(tool)
  const logger = deps.logger ?? createLogger(options.logLevel)
  const onError = deps.onError ?? ((err: unknown) => { logger.error({ err }, 'unexpected error') })
  // Read at scrape time, when the registry and the live budget below exist.
  const metrics = new Metrics(() => ({ live: liveReplay.bytes, ended: registry.retainedBytes }))
  const orchestrator = new Orchestrator({
    memories,
    llm,
    tools,
    extractor: deps.extractor ?? createExtractor(llm),
    maxToolRounds: options.maxToolRounds,
    extractionTimeoutMs: options.extractionTimeoutMs,
    onExtraction: (outcome, err) => {
      metrics.memoryExtractions.inc({ outcome })
      // The turn's reply is safe; its new memories are not: say why, with the upstream's own words.
      if (err !== undefined) logger.warn({ upstream_status: err instanceof UpstreamError ? err.status : null, error: (err as Error).message }, 'memory extraction failed')
    }
  })
  const dev = devSecret === undefined ? null : await prepareDevSession(store, devSecret, options)

  const coordinator = deps.coordinator ?? await openCoordinator(options, onError, logger)
  // CPU spent on gzip is this instance's own: its budget is not shared.
  const compression = new ConcurrencyLimiter({ maxPerTenant: options.streamMaxCompressed, maxTotal: options.streamMaxCompressed })
  const registry = new StreamRegistry({ ttlMs: options.streamResumeTtlMs, graceMs: options.streamDetachGraceMs, maxRetainedBytes: options.streamResumeMaxBytes })
  coordinator.onControl(({ type, id }) => {
    const stream = registry.get(id)
    if (stream === undefined) return // another instance's, or already expired
    if (type === 'cancel') stream.run.abort(new CancelledError())
    else registry.readRemotely(stream)
  })
  const liveReplay = new ReplayBudget(options.streamLiveReplayMaxBytes)
  const keepAlive = new KeepAliveTicker(options.streamKeepaliveMs, (sent) => { metrics.keepAlives.inc(sent) })
  const observer: RunObserver = {
    started: () => metrics.streamsStarted.inc(),
    firstToken: (seconds) => metrics.timeToFirstToken.observe(seconds),
    firstReasoning: (seconds) => metrics.timeToFirstReasoning.observe(seconds),
    toolCall: (status) => metrics.toolCalls.inc({ outcome: status }),
    memories: (ops) => { for (const { op } of ops) metrics.memoriesWritten.inc({ op }) },
    internalError: onError
  }
  const supervisor = new StreamSupervisor({
    coordinator,
    registry,
    metrics,
    logger,
    observer,
    onStreamEnd: deps.onStreamEnd,
    timeouts: { firstTokenMs: options.streamFirstTokenTimeoutMs, idleMs: options.streamIdleTimeoutMs, maxDurationMs: options.streamMaxDurationMs }
  })
  const app: AppContext = {
    options,
    store,
    memories,
    orchestrator,
    authenticate,
    llmProvider: llm.name,
    coordinator,
    startRun: async (orgId, agentId, requestId) => await supervisor.start(orgId, agentId, requestId),
    registry,
    replayLimits: { maxEvents: options.streamReplayMaxEvents, maxBytes: options.streamReplayMaxBytes },
    liveReplay,
    slowReaderCut: (run) => {
      metrics.slowReadersCut.inc()
      logger.warn({ req_id: run.requestId, org: run.orgId, stream_id: run.id, drain_timeout_ms: options.streamDrainTimeoutMs }, 'slow reader cut')
    },
    newWriter: (req, res, signal) => {
      // Over the budget a client still gets its stream, uncompressed.
      const lease = acceptsGzip(req.headers['accept-encoding']) ? compression.tryAcquire('gzip') : null
      const gzip = lease?.ok === true
      if (gzip) res.once('close', lease.lease.release)
      return new SseWriter(res, {
        keepAlive, drainTimeoutMs: options.streamDrainTimeoutMs, retryMs: RETRY_MS, signal, gzip
      })
    }
  }

  const router = new Router()
  const resumer = createResumer(app)
  // A request waiting on its key's first request waits at most as long as that turn may run.
  const idempotency = new Idempotency(coordinator, {
    ttlMs: options.idempotencyTtlMs, maxWaitMs: options.streamMaxDurationMs + options.streamFirstTokenTimeoutMs, onError
  })
  agentRoutes(router, app)
  apiKeyRoutes(router, app)
  chatRoutes(router, app, resumer, idempotency)
  memoryRoutes(router, app)
  streamRoutes(router, app, resumer)
  healthRoutes(router, store, coordinator, PACKAGE_VERSION)
  metricsRoutes(router, { metrics, token: options.metricsToken, devMode: dev !== null })
  // The chat page: on in dev mode unless UI=off, otherwise only with UI=on.
  if (options.ui === 'on' || (options.ui === undefined && dev !== null)) uiRoutes(router, dev?.token ?? null)
  let openapi: string | undefined
  router.on('GET', '/openapi.json', async ({ res }) => {
    // Built on first request, once every route is registered.
    openapi ??= JSON.stringify(buildOpenApi(router.routes(), PACKAGE_VERSION))
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' })
    res.end(openapi)
  })

  const cors = options.corsOrigins === undefined ? null : new Cors(options.corsOrigins, options.corsCredentials === 'on')
  /** Requests refused on their headers alone, before `100 Continue` (their body is never read). */
  const refusedEarly = new WeakMap<http.IncomingMessage, HttpError>()
  let closing = false
  const server = http.createServer({
    // Clients trickling headers (slowloris) get 408. requestTimeout stays at Node's 300 s: set
    // this short as well, it made requests on kept-alive connections wait for seconds under load.
    headersTimeout: options.headersTimeoutMs,
    connectionsCheckingInterval: Math.min(options.headersTimeoutMs, 1000),
    // Node's own answer to a request without Host is an empty 400; ours is the JSON error.
    requireHostHeader: false
  }, async (req, res) => {
    const startedAt = performance.now()
    req.url = originForm(req.url as string)
    const requestId = requestIdFrom(req.headers['x-request-id'], randomUUID)
    res.setHeader('X-Request-Id', requestId)
    res.once('close', () => {
      // The path only: query strings can carry resume tokens.
      const path = (req.url as string).split('?', 1)[0]
      // No status when the client left before any answer: none was sent.
      const status = res.headersSent ? res.statusCode : null
      logger.info({ req_id: requestId, method: req.method, path, status, ms: Math.round(performance.now() - startedAt) }, 'request')
    })
    cors?.decorate(req, res)
    try {
      if (closing) throw serviceUnavailable('Server is shutting down')
      const refused = refusedEarly.get(req)
      if (refused !== undefined) throw refused
      if (req.headers.host === undefined && req.httpVersion === '1.1') throw badRequest('A Host header is required (RFC 9112 §3.2)')
      if (req.method === 'OPTIONS') {
        const methods = [...router.methods(req.url as string), 'OPTIONS']
        cors?.preflight(req, res, methods)
        res.setHeader('Allow', methods.join(', '))
        return sendNoContent(res)
      }
      const { handler, params, query } = router.find(req.method as string, req.url as string)
      await handler({ req, res, params, query })
    } catch (err) {
      // An upstream failing outside a stream (embeddings, say) is still the upstream's fault: 502.
      if (err instanceof UpstreamError) return sendError(res, upstreamError(err.message, { upstream_status: err.status }))
      if (!(err instanceof HttpError)) onError(err)
      sendError(res, err)
    }
  })

  server.on('clientError', answerClientError)
  // Expect: 100-continue: decide on the headers, so a client is not asked for a body that would
  // be refused (RFC 9110 §10.1.1); a refused one gets its final status and the connection closes.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    void refuseOnHeaders(req).then((refusal) => {
      if (refusal === null) res.writeContinue()
      else {
        refusedEarly.set(req, refusal)
        res.setHeader('Connection', 'close')
      }
      server.emit('request', req, res)
    })
  })

  /** What a request with a body is refused for, judging by its headers alone. */
  async function refuseOnHeaders (req: http.IncomingMessage): Promise<HttpError | null> {
    try {
      router.find(req.method as string, originForm(req.url as string))
      if (Number(req.headers['content-length']) > options.bodyLimitBytes) return payloadTooLarge(options.bodyLimitBytes)
      // Every route that takes a body is authenticated.
      if (req.method === 'POST' || req.method === 'PUT') await authenticate(req)
      return null
    } catch (err) {
      // A store that fails the key lookup is the request's error to answer, later, like any other.
      return err instanceof HttpError ? err : null
    }
  }

  let closed: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closing = true
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
    await supervisor.drain(options.shutdownGraceMs)
    registry.close()
    server.closeIdleConnections()
    await stopped
    // Extractions that outlived their streams still write memories: let them land first.
    await orchestrator.drain()
    await coordinator.close()
    await store.close()
  }

  return {
    options,
    http: server,
    store,
    coordinator,
    llm,
    dev,
    routes: router.routes(),
    listen: async () => {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        // Node's default backlog (511) resets part of a burst, such as every client reconnecting
        // after a deploy; the kernel caps this at net.core.somaxconn.
        server.listen({ port: options.port, host: options.host, backlog: 4096 }, () => {
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
    streams: () => [...supervisor.runs].map((run) => ({ id: run.id, orgId: run.orgId, state: run.state.state, bufferedBytes: run.bufferedBytes }))
  }
}
