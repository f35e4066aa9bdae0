import { Ajv, type ErrorObject } from 'ajv'
import { isIP } from 'node:net'

/**
 * Options are validated and defaulted once, here; everything past this point trusts them.
 * The same schema serves `createServer(options)` and the environment (via ENV_VARS).
 */
export interface ServerOptions {
  port: number
  host: string
  jwtSecret?: string
  jwtPublicKey?: string
  jwtIssuer?: string
  jwtAudience?: string
  databaseUrl: string
  llmProvider: 'builtin' | 'openai'
  openaiApiKey?: string
  openaiBaseUrl?: string
  llmModel: string
  streamKeepaliveMs: number
  streamMaxPerTenant: number
  streamMaxTotal: number
  streamFirstTokenTimeoutMs: number
  streamIdleTimeoutMs: number
  streamMaxDurationMs: number
  streamDrainTimeoutMs: number
  builtinTokenDelayMs: number
  bodyLimitBytes: number
  embeddingModel?: string
  maxToolRounds: number
  toolTimeoutMs: number
  embeddingTimeoutMs: number
  extractionTimeoutMs: number
  streamResumeTtlMs: number
  streamDetachGraceMs: number
  streamReplayMaxEvents: number
  streamReplayMaxBytes: number
  streamResumeMaxBytes: number
  streamLiveReplayMaxBytes: number
  streamMaxCompressed: number
  shutdownGraceMs: number
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  metricsToken?: string
  ui?: 'on' | 'off'
  redisUrl?: string
  headersTimeoutMs: number
  redisKeyPrefix: string
  redisLeaseTtlMs: number
  /** How long an Idempotency-Key is remembered; defaults to streamResumeTtlMs. */
  idempotencyTtlMs: number
  /** Origins allowed to call from a browser (comma-separated, or `*`); unset: no CORS headers. */
  corsOrigins?: string
  corsCredentials: 'on' | 'off'
  /** Token roles that may act for and read every user of their own org (comma-separated). */
  adminRoles: string
  /** How long an API key lookup is trusted; a revoked key stops working on every instance within it. */
  apiKeyCacheTtlMs: number
  agentCacheTtlMs: number
  memoryPresenceTtlMs: number
}

export type ServerOptionsInput = Partial<ServerOptions>

const positiveMs = { type: 'integer', minimum: 1, maximum: 2_147_483_647 } as const
const anyMs = { type: 'integer', minimum: 0, maximum: 2_147_483_647 } as const

/**
 * Every option, once: its JSON schema (type, bounds, default) and what it means. The environment
 * variable is the name in upper snake case (`streamIdleTimeoutMs` → `STREAM_IDLE_TIMEOUT_MS`), and
 * README's configuration table is held against this list by a test.
 */
const OPTIONS = {
  port: { type: 'integer', minimum: 0, maximum: 65535, default: 3000, description: 'TCP port (0: any free port)' },
  host: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'Listen address; a non-loopback one requires a JWT key' },
  jwtSecret: { type: 'string', minLength: 32, description: 'HS256 secret' },
  jwtPublicKey: { type: 'string', minLength: 1, description: 'Path to an RSA (RS256) or P-256 (ES256) public key in PEM' },
  jwtIssuer: { type: 'string', minLength: 1, description: 'Required iss claim' },
  jwtAudience: { type: 'string', minLength: 1, description: 'Required aud claim' },
  databaseUrl: { type: 'string', pattern: '^(sqlite:.+|postgres(ql)?://.+)$', default: 'sqlite:./data/agentmem.db', description: 'sqlite:PATH or postgres://…' },
  llmProvider: { type: 'string', enum: ['builtin', 'openai'], description: 'builtin, or openai (any OpenAI-compatible API); openai when an API key is set' },
  openaiApiKey: { type: 'string', minLength: 1, description: 'API key of the openai provider' },
  openaiBaseUrl: { type: 'string', pattern: '^https?://', description: 'Any OpenAI-compatible endpoint' },
  llmModel: { type: 'string', minLength: 1, default: 'gpt-4o-mini', description: 'Default model of the openai provider; an agent\'s llm_config.model wins' },
  streamKeepaliveMs: { ...positiveMs, default: 15_000, description: 'Interval of keep-alive comments' },
  streamMaxPerTenant: { type: 'integer', minimum: 1, default: 100, description: 'Concurrent streams per org' },
  streamMaxTotal: { type: 'integer', minimum: 1, default: 10_000, description: 'Concurrent streams in total' },
  streamFirstTokenTimeoutMs: { ...positiveMs, default: 30_000, description: 'From request to first upstream activity' },
  streamIdleTimeoutMs: { ...positiveMs, default: 60_000, description: 'Longest gap between two upstream deltas' },
  streamMaxDurationMs: { ...positiveMs, default: 600_000, description: 'Longest stream' },
  streamDrainTimeoutMs: { ...positiveMs, default: 30_000, description: 'How long a reader may leave its socket buffer full' },
  builtinTokenDelayMs: { ...anyMs, default: 20, description: 'Pause between tokens of the built-in model' },
  bodyLimitBytes: { type: 'integer', minimum: 1, default: 1_048_576, description: 'Largest request body' },
  embeddingModel: { type: 'string', minLength: 1, description: 'Embed memories through the openai provider for vector retrieval' },
  maxToolRounds: { type: 'integer', minimum: 0, maximum: 50, default: 5, description: 'Tool rounds per turn' },
  toolTimeoutMs: { ...positiveMs, default: 10_000, description: 'Bound on one tool call' },
  embeddingTimeoutMs: { ...positiveMs, default: 10_000, description: 'Bound on embedding for a memory route (write or search) when EMBEDDING_MODEL is set' },
  extractionTimeoutMs: { ...positiveMs, default: 5_000, description: 'How long a stream waits for memory extraction' },
  streamResumeTtlMs: { ...positiveMs, default: 300_000, description: 'How long a finished stream stays resumable' },
  streamDetachGraceMs: { ...anyMs, default: 30_000, description: 'How long a stream without readers keeps generating' },
  streamReplayMaxEvents: { type: 'integer', minimum: 1, default: 10_000, description: 'Replay buffer bound per stream, in events' },
  streamReplayMaxBytes: { type: 'integer', minimum: 1024, default: 1_048_576, description: 'Replay buffer bound per stream, in bytes' },
  streamResumeMaxBytes: { type: 'integer', minimum: 0, default: 134_217_728, description: 'Replay memory of all ended streams together' },
  streamLiveReplayMaxBytes: { type: 'integer', minimum: 1024, default: 268_435_456, description: 'Replay memory of all live streams together' },
  streamMaxCompressed: { type: 'integer', minimum: 0, default: 1_000, description: 'Concurrent gzip-compressed readers' },
  shutdownGraceMs: { ...anyMs, default: 10_000, description: 'How long running streams may finish on shutdown' },
  logLevel: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'pino level' },
  metricsToken: { type: 'string', minLength: 16, description: 'Bearer token /metrics requires' },
  ui: { type: 'string', enum: ['on', 'off'], description: 'The chat page at / (on in dev mode unless off)' },
  redisUrl: { type: 'string', pattern: '^rediss?://', description: 'Share limits, resume and cancel through this Redis' },
  headersTimeoutMs: { ...positiveMs, default: 30_000, description: 'Time a client has to send its request headers' },
  redisKeyPrefix: { type: 'string', default: 'agentmem:', description: 'Namespace of every Redis key and channel' },
  redisLeaseTtlMs: { type: 'integer', minimum: 100, maximum: 2_147_483_647, default: 30_000, description: 'Life of a stream slot its instance stopped renewing' },
  idempotencyTtlMs: { ...positiveMs, description: 'How long an Idempotency-Key is remembered (streamResumeTtlMs when unset)' },
  corsOrigins: { type: 'string', minLength: 1, description: 'Origins a browser app may call from, comma-separated, or *' },
  corsCredentials: { type: 'string', enum: ['on', 'off'], default: 'off', description: 'Access-Control-Allow-Credentials for listed origins' },
  adminRoles: { type: 'string', default: 'admin', description: 'Token roles that act for every user of their org, comma-separated' },
  apiKeyCacheTtlMs: { type: 'integer', minimum: 0, maximum: 600_000, default: 5_000, description: 'How long an API key lookup is trusted' },
  agentCacheTtlMs: { type: 'integer', minimum: 0, maximum: 600_000, default: 30_000, description: 'How long a turn may use a cached agent' },
  memoryPresenceTtlMs: { type: 'integer', minimum: 0, maximum: 600_000, default: 30_000, description: 'How long a turn trusts what it read of whether a user has any memories' }
} as const satisfies Record<keyof ServerOptions, { description: string, [keyword: string]: unknown }>

/** `streamIdleTimeoutMs` → `STREAM_IDLE_TIMEOUT_MS`. */
export const envName = (option: string): string => option.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()

/** What each option is, for docs and the README check: its environment name, default and meaning. */
export const OPTION_DOCS: ReadonlyArray<{ option: keyof ServerOptions, env: string, default: unknown, description: string }> =
  Object.entries(OPTIONS).map(([option, spec]) => ({
    option: option as keyof ServerOptions, env: envName(option), default: 'default' in spec ? spec.default : undefined, description: spec.description
  }))

/** Environment variable → option. */
export const ENV_VARS: Readonly<Record<string, keyof ServerOptions>> = Object.freeze(Object.fromEntries(OPTION_DOCS.map((d) => [d.env, d.option])))

const schema = { type: 'object', additionalProperties: false, properties: OPTIONS }

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true })
const validate = ajv.compile(schema)

function describe (errors: ErrorObject[], fromEnv: boolean): string {
  return errors.map((e) => {
    if (e.keyword === 'additionalProperties') return `${String(e.params.additionalProperty)}: unknown option`
    const option = e.instancePath.slice(1) as keyof ServerOptions
    return `${fromEnv ? envName(option) : option} ${String(e.message)}`
  }).join('; ')
}

/** A comma-separated option as its entries, trimmed, empty ones dropped. */
export function commaList (value: string): string[] {
  return value.split(',').map((v) => v.trim()).filter((v) => v !== '')
}

/** `*`, or the listed origins. */
export function corsOriginList (value: string): '*' | string[] {
  const origins = commaList(value)
  return origins.includes('*') ? '*' : origins
}

export function isLoopback (host: string): boolean {
  if (host === 'localhost' || host === '::1') return true
  return isIP(host) === 4 && host.startsWith('127.')
}

function resolve (input: Record<string, unknown>, fromEnv: boolean): ServerOptions {
  const candidate = { ...input }
  if (!validate(candidate)) throw new ConfigError(`Invalid configuration: ${describe(validate.errors as ErrorObject[], fromEnv)}`)
  const validated = candidate as unknown as ServerOptions
  // The two defaults that depend on other options; then nothing changes any more.
  const options: ServerOptions = Object.freeze({
    ...validated,
    llmProvider: validated.llmProvider ?? (validated.openaiApiKey === undefined ? 'builtin' : 'openai'),
    idempotencyTtlMs: validated.idempotencyTtlMs ?? validated.streamResumeTtlMs
  })
  if (options.corsCredentials === 'on' && (options.corsOrigins === undefined || corsOriginList(options.corsOrigins) === '*')) {
    throw new ConfigError(`Invalid configuration: ${fromEnv ? 'CORS_CREDENTIALS=on needs CORS_ORIGINS' : 'corsCredentials on needs corsOrigins'} to list origins; credentials with * would let any site act as a signed-in user`)
  }
  const keyName = fromEnv ? 'OPENAI_API_KEY' : 'openaiApiKey'
  if (options.llmProvider === 'openai' && options.openaiApiKey === undefined) {
    throw new ConfigError(`Invalid configuration: ${keyName} is required when the LLM provider is openai`)
  }
  if (options.embeddingModel !== undefined && options.openaiApiKey === undefined) {
    throw new ConfigError(`Invalid configuration: ${keyName} is required for embeddings (${fromEnv ? 'EMBEDDING_MODEL' : 'embeddingModel'})`)
  }
  if (options.jwtSecret !== undefined && options.jwtPublicKey !== undefined) {
    throw new ConfigError('Invalid configuration: set either JWT_SECRET or JWT_PUBLIC_KEY, not both')
  }
  if (options.jwtSecret === undefined && options.jwtPublicKey === undefined && !isLoopback(options.host)) {
    throw new ConfigError(`Refusing to start: HOST ${options.host} is not a loopback address and no JWT_SECRET or JWT_PUBLIC_KEY is set`)
  }
  return options
}

export function resolveOptions (input: ServerOptionsInput = {}): ServerOptions {
  return resolve(input as Record<string, unknown>, false)
}

/** Unset and empty variables both mean "use the default". */
export function optionsFromEnv (env: NodeJS.ProcessEnv): ServerOptions {
  const input: Record<string, unknown> = {}
  for (const [name, option] of Object.entries(ENV_VARS)) {
    const value = env[name]
    if (value !== undefined && value !== '') input[option] = value
  }
  return resolve(input, true)
}

/** True when the server mints its own key: no key configured, loopback only. */
export function isDevMode (options: ServerOptions): boolean {
  return options.jwtSecret === undefined && options.jwtPublicKey === undefined
}
