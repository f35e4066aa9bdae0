import { signToken } from './auth/jwt.js'
import type { ServerOptions } from './config.js'
import type { Agent, Store } from './store/store.js'

export const DEV_ORG = 'demo'
export const DEV_USER = 'demo-user'
const DAY_MS = 24 * 60 * 60 * 1000

export interface DevSession {
  token: string
  agent: Agent
}

/** Local dev mode: a demo agent and a 24 h token for it, so the first curl works. */
export async function prepareDevSession (store: Store, secret: string, options: ServerOptions): Promise<DevSession> {
  const [existing] = await store.listAgents(DEV_ORG, { limit: 1, offset: 0 })
  const agent = existing ?? await store.createAgent(DEV_ORG, {
    name: 'demo',
    description: 'Created by agentmem-stream in local dev mode',
    system: 'You are a helpful assistant with a long-term memory.'
  })
  const token = signToken(secret, { org: DEV_ORG, sub: DEV_USER, roles: ['admin'], ttlMs: DAY_MS },
    { issuer: options.jwtIssuer, audience: options.jwtAudience })
  return { token, agent }
}

export function devCurl (baseUrl: string, session: DevSession): string {
  return [
    `curl -N -X POST ${baseUrl}/api/v1/agents/${session.agent.id}/chat/stream`,
    '  -H "Content-Type: application/json"',
    `  -H "Authorization: Bearer ${session.token}"`,
    '  -d \'{"message": "Tell me a story about AI"}\''
  ].join(' \\\n')
}
