import t from 'tap'
import { ConfigError, isDevMode, isLoopback, optionsFromEnv, resolveOptions } from '../lib/config.js'

t.test('defaults', async (t) => {
  const o = resolveOptions()
  t.match(o, {
    port: 3000,
    host: '127.0.0.1',
    databaseUrl: 'sqlite:./data/agentmem.db',
    llmProvider: 'builtin',
    streamKeepaliveMs: 15_000,
    streamMaxPerTenant: 100,
    streamMaxTotal: 10_000,
    streamFirstTokenTimeoutMs: 30_000,
    streamIdleTimeoutMs: 60_000,
    streamMaxDurationMs: 600_000,
    idempotencyTtlMs: 300_000,
    corsCredentials: 'off',
    builtinTokenDelayMs: 20,
    bodyLimitBytes: 1_048_576
  })
  t.ok(isDevMode(o))
})

t.test('environment variables are coerced, empty ones ignored', async (t) => {
  const o = optionsFromEnv({
    PORT: '8080', HOST: '0.0.0.0', JWT_SECRET: 'x'.repeat(32), STREAM_KEEPALIVE_MS: '500', BUILTIN_TOKEN_DELAY_MS: '0',
    OPENAI_API_KEY: 'sk', OPENAI_BASE_URL: 'http://localhost:11434/v1', LLM_MODEL: '', DATABASE_URL: 'sqlite::memory:', UNRELATED: 'x'
  })
  t.match(o, { port: 8080, host: '0.0.0.0', streamKeepaliveMs: 500, builtinTokenDelayMs: 0, llmProvider: 'openai', databaseUrl: 'sqlite::memory:' })
  t.equal(o.llmModel, 'gpt-4o-mini', 'an empty variable means the default')
  t.notOk(isDevMode(o))
  t.ok(Object.isFrozen(o), 'options are frozen once validated')
  t.equal(optionsFromEnv({ OPENAI_API_KEY: 'sk', LLM_PROVIDER: 'builtin' }).llmProvider, 'builtin', 'explicit provider wins')
})

t.test('bad values stop start-up with a message naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /PORT must be integer/],
    [{ CORS_CREDENTIALS: 'on' }, /CORS_CREDENTIALS=on needs CORS_ORIGINS/],
    [{ CORS_CREDENTIALS: 'on', CORS_ORIGINS: ' *, http://a.example' }, /CORS_CREDENTIALS=on needs CORS_ORIGINS/],
    [{ PORT: '70000' }, /PORT must be <= 65535/],
    [{ STREAM_MAX_PER_TENANT: '0' }, /STREAM_MAX_PER_TENANT must be >= 1/],
    [{ STREAM_IDLE_TIMEOUT_MS: '-5' }, /STREAM_IDLE_TIMEOUT_MS must be >= 1/],
    [{ LLM_PROVIDER: 'claude' }, /LLM_PROVIDER must be equal to one of the allowed values/],
    [{ LLM_PROVIDER: 'openai' }, /OPENAI_API_KEY is required/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET must NOT have fewer than 32 characters/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL must match pattern/],
    [{ OPENAI_BASE_URL: 'ftp://x', OPENAI_API_KEY: 'k' }, /OPENAI_BASE_URL must match pattern/],
    [{ JWT_SECRET: 'x'.repeat(32), JWT_PUBLIC_KEY: '/k.pem' }, /either JWT_SECRET or JWT_PUBLIC_KEY/],
    [{ EMBEDDING_MODEL: 'text-embedding-3-small' }, /OPENAI_API_KEY is required for embeddings \(EMBEDDING_MODEL\)/],
    [{ HOST: '0.0.0.0' }, /Refusing to start: HOST 0\.0\.0\.0 is not a loopback address/],
    [{ PORT: 'x', STREAM_MAX_TOTAL: 'y' }, /PORT must be integer; STREAM_MAX_TOTAL must be integer/]
  ]
  for (const [env, message] of cases) t.throws(() => optionsFromEnv(env), { name: 'ConfigError', message }, JSON.stringify(env))
  t.throws(() => resolveOptions({ streamKeepaliveMs: 0 }), { message: /streamKeepaliveMs must be >= 1/ }, 'option names when not from env')
  t.throws(() => resolveOptions({ llmProvider: 'openai' }), { message: /openaiApiKey is required/ })
  t.throws(() => resolveOptions({ embeddingModel: 'e' }), { message: /openaiApiKey is required for embeddings \(embeddingModel\)/ })
  t.throws(() => resolveOptions({ nonsense: 1 } as never), { message: /nonsense: unknown option/ })
  t.type(new ConfigError('x'), Error)
})

t.test('loopback detection', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) t.ok(isLoopback(h), h)
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '127.example.com', 'example.com']) t.notOk(isLoopback(h), h)
})
