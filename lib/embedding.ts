import type http from 'node:http'
import type { ServerOptions } from './config.js'
import type { Coordinator } from './coord/coordinator.js'
import type { DevSession } from './dev.js'
import type { Embedder, LlmProvider } from './llm/provider.js'
import type { MemoryExtractor } from './memory/extractor.js'
import type { Logger } from './observability/logger.js'
import type { Store } from './store/store.js'
import type { StreamOutcome } from './stream/outcomes.js'
import type { ToolDefinition } from './tools/registry.js'

/* What an app embedding the server passes to `createServer` and gets back. */

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
