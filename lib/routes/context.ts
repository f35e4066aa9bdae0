import type { Principal } from '../auth/jwt.js'
import type { AuthenticateRequest } from '../auth/api-keys.js'
import type { Coordinator } from '../coord/coordinator.js'
import type { StreamRegistry } from '../stream/registry.js'
import type { WriterFactory } from '../sse/writers.js'
import type { Orchestrator } from '../chat/orchestrator.js'
import type { StreamRun } from '../stream/run.js'
import type { ServerOptions } from '../config.js'
import type { Handler, RequestContext } from '../http/router.js'
import type { Store } from '../store/store.js'
import type { AgentCache } from '../store/agent-cache.js'
import type { MemoryService } from '../memory/service.js'

/** What route modules need from the server, passed in rather than imported, so tests can build it. */
export interface AppContext {
  options: ServerOptions
  store: Store
  memories: MemoryService
  orchestrator: Orchestrator
  /** Who the request is (JWT or API key), or a 401. */
  authenticate: AuthenticateRequest
  /** The configured LLM provider's name (`openai` or `builtin`), which agents' `llm_config.provider` must name. */
  llmProvider: string
  coordinator: Coordinator
  /** Reserves a stream slot for the tenant or throws 429 (503 when the coordinator is unreachable). */
  startRun: (orgId: string, agentId: string, requestId: string) => Promise<StreamRun>
  /** Agents as turns read them: cached, dropped on change here and on every instance. */
  agents: AgentCache
  /** Where a run becomes a stream that readers attach to. */
  registry: StreamRegistry
  /** An SSE writer for a response, gzip when the client accepts it and the budget allows. */
  newWriter: WriterFactory
}

export type AuthedHandler = (ctx: RequestContext & { principal: Principal }) => Promise<void>

export function authed (app: AppContext, handler: AuthedHandler): Handler {
  return async ({ req, res, params, query }) => {
    const principal = await app.authenticate(req)
    // A literal, not `{ ...ctx, principal }`: see test/hidden-classes.test.ts.
    await handler({ req, res, params, query, principal })
  }
}
