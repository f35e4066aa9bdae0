import { Ajv, type ValidateFunction } from 'ajv'
import type { ToolSpec } from '../llm/provider.js'
import type { MemoryOp, MemoryService, MemoryScope } from '../memory/service.js'

/** What a tool may use while it runs: the caller's scope, and a signal that fires on disconnect or timeout. */
export interface ToolContext {
  signal: AbortSignal
  scope: MemoryScope
  sessionId: string
  memories: MemoryService
  /** Memories the tool wrote, announced in the turn's memory_update. */
  memoryOps: MemoryOp[]
}

export interface ToolDefinition {
  name: string
  description: string
  /** JSON schema of the arguments, validated with ajv before the handler runs. */
  parameters: Record<string, unknown>
  handler: (args: Record<string, unknown>, ctx: ToolContext) => Promise<unknown>
}

export type ToolOutcome =
  | { ok: true, args: unknown, result: string }
  | { ok: false, args: unknown, error: string }

const NAME = /^[a-zA-Z0-9_-]{1,64}$/

/**
 * Tools the model may call. Every failure (unknown tool, bad JSON, invalid arguments, a throw,
 * a timeout) becomes a failed outcome the model is told about; nothing here throws.
 */
export class ToolRegistry {
  readonly #tools = new Map<string, { def: ToolDefinition, validate: ValidateFunction }>()
  readonly #ajv = new Ajv({ allErrors: true, strict: false })
  readonly #timeoutMs: number
  #specs: readonly ToolSpec[] | null = null

  constructor (timeoutMs: number) {
    this.#timeoutMs = timeoutMs
  }

  register (def: ToolDefinition): this {
    if (!NAME.test(def.name)) throw new Error(`Tool name must match ${String(NAME)}: ${def.name}`)
    if (this.#tools.has(def.name)) throw new Error(`Tool already registered: ${def.name}`)
    this.#tools.set(def.name, { def, validate: this.#ajv.compile(def.parameters) })
    this.#specs = null
    return this
  }

  /** Built once and shared by every turn (each live turn holds it), rebuilt after a registration. */
  specs (): readonly ToolSpec[] {
    this.#specs ??= Object.freeze([...this.#tools.values()].map(({ def }) => Object.freeze({ name: def.name, description: def.description, parameters: def.parameters })))
    return this.#specs
  }

  async run (name: string, rawArgs: string, ctx: ToolContext): Promise<ToolOutcome> {
    let args: unknown = rawArgs
    try {
      args = rawArgs.trim() === '' ? {} : JSON.parse(rawArgs)
    } catch {
      return { ok: false, args, error: 'Arguments are not valid JSON' }
    }
    const tool = this.#tools.get(name)
    if (tool === undefined) return { ok: false, args, error: `Unknown tool: ${name}` }
    if (!tool.validate(args)) {
      return { ok: false, args, error: `Invalid arguments: ${this.#ajv.errorsText(tool.validate.errors)}` }
    }
    // A timer of our own, not AbortSignal.timeout(): AbortSignal.any() holds its inputs weakly, and
    // a collected timeout signal never fires, so a stuck handler would hang the turn.
    const timeout = new AbortController()
    const timer = setTimeout(() => { timeout.abort(new Error('tool timeout')) }, this.#timeoutMs)
    const outcome = await this.#call(tool.def, args as Record<string, unknown>, ctx, AbortSignal.any([ctx.signal, timeout.signal]))
    clearTimeout(timer)
    return outcome
  }

  /** The handler's result, or its failure: a throw, the caller's abort, or the timeout. Never throws. */
  async #call (def: ToolDefinition, args: Record<string, unknown>, ctx: ToolContext, signal: AbortSignal): Promise<ToolOutcome> {
    try {
      // A literal, not `{ ...ctx, signal }`: see test/hidden-classes.test.ts.
      const result = await raceAbort(def.handler(args, { scope: ctx.scope, sessionId: ctx.sessionId, memories: ctx.memories, memoryOps: ctx.memoryOps, signal }), signal)
      return { ok: true, args, result: typeof result === 'string' ? result : JSON.stringify(result) }
    } catch (err) {
      const error = signal.aborted && !ctx.signal.aborted ? `Tool timed out after ${this.#timeoutMs} ms` : (err as Error).message
      return { ok: false, args, error }
    }
  }
}

/** A handler that ignores its signal must not hold the stream past a disconnect or timeout. */
async function raceAbort<T> (work: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort!: () => void
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([work, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
