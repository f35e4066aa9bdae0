#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { signToken } from './auth/jwt.js'
import { commaList, ConfigError, optionsFromEnv } from './config.js'
import { devCurl } from './dev.js'
import { createServer } from './server.js'
import { PACKAGE_VERSION } from './version.js'
import { parseTtl } from './ttl.js'
import { openStore } from './store/open.js'
import { createApiKey } from './routes/api-keys.js'

const USAGE = `Usage: agentmem-stream <command> [options]

Commands:
  serve                      Start the server (what npm start runs), configured by environment variables
  token --org ID --sub USER  Print a JWT signed with JWT_SECRET
        [--roles a,b] [--ttl 24h]   (ttl units: s, m, h, d)
  api-key create --org ID    Make an org API key in DATABASE_URL's store; the key is the last line
        [--name N] [--roles a,b] [--ttl 90d]   printed, shown this once (only its SHA-256 is kept)
  api-key list --org ID      The org's keys (never their secrets)
  api-key revoke KEY_ID      Revoke a key (every instance refuses it within API_KEY_CACHE_TTL_MS)

Options:
  -h, --help                 Show this help
  -v, --version              Show the version`



function token (args: string[]): void {
  const { values } = parseArgs({
    args,
    options: { org: { type: 'string' }, sub: { type: 'string' }, roles: { type: 'string' }, ttl: { type: 'string', default: '24h' } }
  })
  if (values.org === undefined || values.sub === undefined) throw new ConfigError('token needs --org and --sub')
  const options = optionsFromEnv(process.env)
  if (options.jwtSecret === undefined) {
    throw new ConfigError(options.jwtPublicKey === undefined
      ? 'No key configured: set JWT_SECRET (dev mode makes a new random key at every start, so its tokens cannot be minted here)'
      : 'JWT_PUBLIC_KEY can only verify: mint tokens with the matching private key in your auth service, or use JWT_SECRET')
  }
  const roles = values.roles === undefined ? [] : commaList(values.roles)
  console.log(signToken(options.jwtSecret, { org: values.org, sub: values.sub, roles, ttlMs: parseTtl(values.ttl as string) },
    { issuer: options.jwtIssuer, audience: options.jwtAudience }))
}

async function apiKey (args: string[]): Promise<void> {
  const [action, ...rest] = args
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { org: { type: 'string' }, name: { type: 'string' }, roles: { type: 'string' }, ttl: { type: 'string' } }
  })
  const store = await openStore(optionsFromEnv(process.env).databaseUrl)
  try {
    if (action === 'create' || action === 'list') {
      if (values.org === undefined) throw new ConfigError(`api-key ${action} needs --org`)
      if (action === 'list') {
        for (const key of await store.listApiKeys(values.org)) console.log(JSON.stringify(key))
        return
      }
      const roles = values.roles === undefined ? [] : commaList(values.roles)
      const created = await createApiKey(store, values.org, { name: values.name, roles, ttl: values.ttl })
      console.log(`created ${created.id} for org ${created.organization_id}${created.expires_at === null ? '' : `, expires ${created.expires_at}`}`)
      console.log(created.key)
      return
    }
    if (action === 'revoke' && positionals[0] !== undefined) {
      if (!await store.revokeApiKey(null, positionals[0])) throw new ConfigError(`No active API key ${positionals[0]}`)
      console.log(`revoked ${positionals[0]}`)
      return
    }
    throw new ConfigError('api-key needs create --org ID, list --org ID or revoke KEY_ID')
  } finally {
    await store.close()
  }
}

async function serve (): Promise<void> {
  const server = await createServer(optionsFromEnv(process.env))
  const url = await server.listen()
  const { options, llm, store } = server
  console.log(`agentmem-stream ${PACKAGE_VERSION} listening on ${url}`)
  console.log(`  llm: ${llm.name} (${llm.model})  store: ${store.kind}  coordinator: ${server.coordinator.kind}  limits: ${options.streamMaxPerTenant}/tenant, ${options.streamMaxTotal} total`)
  if (server.dev !== null) {
    console.log('  local dev mode: no JWT key configured, so a random one was generated. Try:\n')
    console.log(devCurl(url, server.dev) + '\n')
  }
  const stop = (): void => {
    /* c8 ignore start -- only a store that fails to close gets to the rejection handler */
    server.close().then(() => process.exit(0), (err: unknown) => {
      console.error(err)
      process.exit(1)
    })
    /* c8 ignore stop */
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

async function main (argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv
  if (command === '-h' || command === '--help' || command === 'help') return console.log(USAGE)
  if (command === '-v' || command === '--version') return console.log(PACKAGE_VERSION)
  if (command === 'serve') return await serve()
  if (command === 'token') return token(rest)
  if (command === 'api-key') return await apiKey(rest)
  console.error(`Unknown command: ${command}\n\n${USAGE}`)
  process.exit(2)
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof ConfigError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? (err as Error).message : err)
  process.exit(1)
})
