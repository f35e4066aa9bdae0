#!/usr/bin/env node
import { ConfigError, optionsFromEnv } from './config.js'
import { devCurl } from './dev.js'
import { createServer } from './server.js'

async function serve (): Promise<void> {
  const server = await createServer(optionsFromEnv(process.env))
  const url = await server.listen()
  const { options, llm, store } = server
  console.log(`agentmem-stream listening on ${url}`)
  console.log(`  llm: ${llm.name} (${llm.model})  store: ${store.kind}  limits: ${options.streamMaxPerTenant}/tenant, ${options.streamMaxTotal} total`)
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

const [command = 'serve'] = process.argv.slice(2)
if (command !== 'serve') {
  console.error(`Unknown command: ${command}\nUsage: agentmem-stream serve`)
  process.exit(2)
}
serve().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
})
