import { createAuthenticator, generateSecret } from './auth/jwt.js'
import { ApiKeyAuthenticator, requestAuthenticator } from './auth/api-keys.js'
import { Orchestrator } from './chat/orchestrator.js'
import { commaList, isDevMode, resolveOptions, type ServerOptionsInput } from './config.js'
import { openCoordinator } from './coord/open.js'
import { prepareDevSession } from './dev.js'
import { Cors } from './http/cors.js'
import { createListener, listen } from './http/listener.js'
import { Router } from './http/router.js'
import { createEmbedder, createExtractor, createLlm } from './llm/create.js'
import { UpstreamError } from './llm/provider.js'
import { MemoryService } from './memory/service.js'
import { createLogger } from './observability/logger.js'
import { Metrics } from './observability/metrics.js'
import { buildOpenApi } from './openapi.js'
import { agentRoutes } from './routes/agents.js'
import { apiKeyRoutes } from './routes/api-keys.js'
import { chatRoutes } from './routes/chat.js'
import { healthRoutes } from './routes/health.js'
import { Idempotency } from './routes/idempotency.js'
import { memoryRoutes } from './routes/memories.js'
import { metricsRoutes } from './routes/metrics.js'
import { streamRoutes } from './routes/streams.js'
import { uiRoutes } from './routes/ui.js'
import { KeepAliveTicker } from './sse/keep-alive.js'
import { writerFactory } from './sse/writers.js'
import { openStore } from './store/open.js'
import { AgentCache } from './store/agent-cache.js'
import { StreamRegistry } from './stream/registry.js'
import { ReplayBudget } from './stream/replay-log.js'
import { Resumer } from './stream/resumer.js'
import { StreamSupervisor } from './stream/supervisor.js'
import { builtinTools } from './tools/builtin.js'
import { ToolRegistry } from './tools/registry.js'
import { PACKAGE_VERSION } from './version.js'
import type { AgentMemServer, ServerDeps } from './embedding.js'

export type { AgentMemServer, ServerDeps, StreamEndInfo, StreamInfo } from './embedding.js'

/** What a browser EventSource waits before reconnecting. */
const RETRY_MS = 1000

/** Builds every part from the options (or the parts given in `deps`) and wires them together. */
export async function createServer (input: ServerOptionsInput = {}, deps: ServerDeps = {}): Promise<AgentMemServer> {
  const options = resolveOptions(input)
  const devSecret = isDevMode(options) ? generateSecret() : undefined
  const adminRoles = commaList(options.adminRoles)
  const store = deps.store ?? await openStore(options.databaseUrl)
  const authenticate = requestAuthenticator(createAuthenticator({
    secret: devSecret ?? options.jwtSecret,
    publicKeyPath: options.jwtPublicKey,
    issuer: options.jwtIssuer,
    audience: options.jwtAudience,
    adminRoles
  }), new ApiKeyAuthenticator(store, { cacheTtlMs: options.apiKeyCacheTtlMs, maxCached: 10_000, adminRoles: new Set(adminRoles) }))
  const llm = deps.llm ?? createLlm(options)
  const tools = new ToolRegistry(options.toolTimeoutMs)
  for (const tool of [...builtinTools, ...deps.tools ?? []]) tools.register(tool)
  const logger = deps.logger ?? createLogger(options.logLevel)
  const onError = deps.onError ?? ((err: unknown) => { logger.error({ err }, 'unexpected error') })
  const coordinator = deps.coordinator ?? await openCoordinator(options, onError, logger)
  const memories = new MemoryService(store, deps.embedder ?? createEmbedder(options), {
    ttlMs: options.memoryPresenceTtlMs, maxEntries: 100_000, coordinator, onError
  })
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

  const liveReplay = new ReplayBudget(options.streamLiveReplayMaxBytes)
  const registry = new StreamRegistry({
    ttlMs: options.streamResumeTtlMs,
    graceMs: options.streamDetachGraceMs,
    maxRetainedBytes: options.streamResumeMaxBytes,
    replayLimits: { maxEvents: options.streamReplayMaxEvents, maxBytes: options.streamReplayMaxBytes },
    liveReplay,
    coordinator,
    onSlowReader: (run) => { supervisor.slowReaderCut(run) }
  })
  const supervisor = new StreamSupervisor({
    coordinator,
    registry,
    metrics,
    logger,
    onError,
    onStreamEnd: deps.onStreamEnd,
    drainTimeoutMs: options.streamDrainTimeoutMs,
    timeouts: { firstTokenMs: options.streamFirstTokenTimeoutMs, idleMs: options.streamIdleTimeoutMs, maxDurationMs: options.streamMaxDurationMs }
  })
  const newWriter = writerFactory({
    keepAlive: new KeepAliveTicker(options.streamKeepaliveMs, (sent) => { metrics.keepAlives.inc(sent) }),
    drainTimeoutMs: options.streamDrainTimeoutMs,
    retryMs: RETRY_MS,
    maxCompressed: options.streamMaxCompressed
  })
  const app = {
    options,
    store,
    memories,
    orchestrator,
    authenticate,
    llmProvider: llm.name,
    coordinator,
    startRun: async (orgId: string, agentId: string, requestId: string) => await supervisor.start(orgId, agentId, requestId),
    agents: new AgentCache(store, { ttlMs: options.agentCacheTtlMs, maxEntries: 10_000, coordinator, onError }),
    registry,
    newWriter
  }

  const router = new Router()
  const resumer = new Resumer(registry, coordinator, newWriter)
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

  let closing = false
  const server = createListener({
    router,
    cors: options.corsOrigins === undefined ? null : new Cors(options.corsOrigins, options.corsCredentials === 'on'),
    logger,
    onError,
    authenticate,
    headersTimeoutMs: options.headersTimeoutMs,
    bodyLimitBytes: options.bodyLimitBytes,
    closing: () => closing
  })

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
    listen: async () => await listen(server, options.port, options.host),
    close: async () => {
      closed ??= close()
      await closed
    },
    streams: () => [...supervisor.runs].map((run) => ({ id: run.id, orgId: run.orgId, state: run.state.state, bufferedBytes: run.bufferedBytes }))
  }
}
