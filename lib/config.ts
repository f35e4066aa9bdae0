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
  llmModel?: string
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
}

export type ServerOptionsInput = Partial<ServerOptions>

const positiveMs = { type: 'integer', minimum: 1, maximum: 2_147_483_647 }

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 0, maximum: 65535, default: 3000 },
    host: { type: 'string', minLength: 1, default: '127.0.0.1' },
    jwtSecret: { type: 'string', minLength: 32 },
    jwtPublicKey: { type: 'string', minLength: 1 },
    jwtIssuer: { type: 'string', minLength: 1 },
    jwtAudience: { type: 'string', minLength: 1 },
    databaseUrl: { type: 'string', pattern: '^(sqlite:.+|postgres(ql)?://.+)$', default: 'sqlite:./data/agentmem.db' },
    llmProvider: { type: 'string', enum: ['builtin', 'openai'] },
    openaiApiKey: { type: 'string', minLength: 1 },
    openaiBaseUrl: { type: 'string', pattern: '^https?://' },
    llmModel: { type: 'string', minLength: 1 },
    streamKeepaliveMs: { ...positiveMs, default: 15_000 },
    streamMaxPerTenant: { type: 'integer', minimum: 1, default: 100 },
    streamMaxTotal: { type: 'integer', minimum: 1, default: 10_000 },
    streamFirstTokenTimeoutMs: { ...positiveMs, default: 30_000 },
    streamIdleTimeoutMs: { ...positiveMs, default: 60_000 },
    streamMaxDurationMs: { ...positiveMs, default: 600_000 },
    streamDrainTimeoutMs: { ...positiveMs, default: 30_000 },
    builtinTokenDelayMs: { type: 'integer', minimum: 0, maximum: 2_147_483_647, default: 20 },
    bodyLimitBytes: { type: 'integer', minimum: 1, default: 1_048_576 },
    embeddingModel: { type: 'string', minLength: 1 },
    maxToolRounds: { type: 'integer', minimum: 0, maximum: 50, default: 5 },
    toolTimeoutMs: { ...positiveMs, default: 10_000 },
    extractionTimeoutMs: { ...positiveMs, default: 5_000 },
    streamResumeTtlMs: { ...positiveMs, default: 300_000 },
    streamDetachGraceMs: { type: 'integer', minimum: 0, maximum: 2_147_483_647, default: 30_000 },
    streamReplayMaxEvents: { type: 'integer', minimum: 1, default: 10_000 },
    streamReplayMaxBytes: { type: 'integer', minimum: 1024, default: 1_048_576 },
    streamResumeMaxBytes: { type: 'integer', minimum: 0, default: 134_217_728 },
    streamLiveReplayMaxBytes: { type: 'integer', minimum: 1024, default: 268_435_456 },
    streamMaxCompressed: { type: 'integer', minimum: 0, default: 1_000 },
    shutdownGraceMs: { type: 'integer', minimum: 0, maximum: 2_147_483_647, default: 10_000 },
    logLevel: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    metricsToken: { type: 'string', minLength: 16 },
    ui: { type: 'string', enum: ['on', 'off'] },
    redisUrl: { type: 'string', pattern: '^rediss?://' },
    headersTimeoutMs: { ...positiveMs, default: 30_000 },
    redisKeyPrefix: { type: 'string', default: 'agentmem:' },
    redisLeaseTtlMs: { type: 'integer', minimum: 100, maximum: 2_147_483_647, default: 30_000 },
    idempotencyTtlMs: positiveMs,
    corsOrigins: { type: 'string', minLength: 1 },
    corsCredentials: { type: 'string', enum: ['on', 'off'], default: 'off' },
    adminRoles: { type: 'string', default: 'admin' },
    apiKeyCacheTtlMs: { type: 'integer', minimum: 0, maximum: 600_000, default: 5_000 }
  }
} as const

/** Environment variable → option. README's configuration table follows this list. */
export const ENV_VARS: Readonly<Record<string, keyof ServerOptions>> = {
  PORT: 'port',
  HOST: 'host',
  JWT_SECRET: 'jwtSecret',
  JWT_PUBLIC_KEY: 'jwtPublicKey',
  JWT_ISSUER: 'jwtIssuer',
  JWT_AUDIENCE: 'jwtAudience',
  DATABASE_URL: 'databaseUrl',
  LLM_PROVIDER: 'llmProvider',
  OPENAI_API_KEY: 'openaiApiKey',
  OPENAI_BASE_URL: 'openaiBaseUrl',
  LLM_MODEL: 'llmModel',
  STREAM_KEEPALIVE_MS: 'streamKeepaliveMs',
  STREAM_MAX_PER_TENANT: 'streamMaxPerTenant',
  STREAM_MAX_TOTAL: 'streamMaxTotal',
  STREAM_FIRST_TOKEN_TIMEOUT_MS: 'streamFirstTokenTimeoutMs',
  STREAM_IDLE_TIMEOUT_MS: 'streamIdleTimeoutMs',
  STREAM_MAX_DURATION_MS: 'streamMaxDurationMs',
  STREAM_DRAIN_TIMEOUT_MS: 'streamDrainTimeoutMs',
  BUILTIN_TOKEN_DELAY_MS: 'builtinTokenDelayMs',
  BODY_LIMIT_BYTES: 'bodyLimitBytes',
  EMBEDDING_MODEL: 'embeddingModel',
  MAX_TOOL_ROUNDS: 'maxToolRounds',
  TOOL_TIMEOUT_MS: 'toolTimeoutMs',
  EXTRACTION_TIMEOUT_MS: 'extractionTimeoutMs',
  STREAM_RESUME_TTL_MS: 'streamResumeTtlMs',
  STREAM_DETACH_GRACE_MS: 'streamDetachGraceMs',
  STREAM_REPLAY_MAX_EVENTS: 'streamReplayMaxEvents',
  STREAM_REPLAY_MAX_BYTES: 'streamReplayMaxBytes',
  STREAM_RESUME_MAX_BYTES: 'streamResumeMaxBytes',
  STREAM_LIVE_REPLAY_MAX_BYTES: 'streamLiveReplayMaxBytes',
  STREAM_MAX_COMPRESSED: 'streamMaxCompressed',
  SHUTDOWN_GRACE_MS: 'shutdownGraceMs',
  LOG_LEVEL: 'logLevel',
  METRICS_TOKEN: 'metricsToken',
  UI: 'ui',
  HEADERS_TIMEOUT_MS: 'headersTimeoutMs',
  REDIS_URL: 'redisUrl',
  REDIS_KEY_PREFIX: 'redisKeyPrefix',
  REDIS_LEASE_TTL_MS: 'redisLeaseTtlMs',
  IDEMPOTENCY_TTL_MS: 'idempotencyTtlMs',
  CORS_ORIGINS: 'corsOrigins',
  CORS_CREDENTIALS: 'corsCredentials',
  ADMIN_ROLES: 'adminRoles',
  API_KEY_CACHE_TTL_MS: 'apiKeyCacheTtlMs'
}

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true })
const validate = ajv.compile(schema)

const OPTION_TO_ENV = new Map(Object.entries(ENV_VARS).map(([env, option]) => [option, env]))

function describe (errors: ErrorObject[], fromEnv: boolean): string {
  return errors.map((e) => {
    if (e.keyword === 'additionalProperties') return `${String(e.params.additionalProperty)}: unknown option`
    const option = e.instancePath.slice(1) as keyof ServerOptions
    return `${fromEnv ? OPTION_TO_ENV.get(option) as string : option} ${String(e.message)}`
  }).join('; ')
}

/** `*`, or the listed origins (trimmed, empty entries dropped). */
export function corsOriginList (value: string): '*' | string[] {
  const origins = value.split(',').map((o) => o.trim()).filter((o) => o !== '')
  return origins.includes('*') ? '*' : origins
}

export function isLoopback (host: string): boolean {
  if (host === 'localhost' || host === '::1') return true
  return isIP(host) === 4 && host.startsWith('127.')
}

function resolve (input: Record<string, unknown>, fromEnv: boolean): ServerOptions {
  const candidate = { ...input }
  if (!validate(candidate)) throw new ConfigError(`Invalid configuration: ${describe(validate.errors as ErrorObject[], fromEnv)}`)
  const options = candidate as unknown as ServerOptions
  options.llmProvider ??= options.openaiApiKey === undefined ? 'builtin' : 'openai'
  options.idempotencyTtlMs ??= options.streamResumeTtlMs
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
