import { isoTime } from '../iso-time.js'
import { uuidV7 } from '../random.js'
import type { Agent, AgentInput, ApiKey, ApiKeyInput, Memory, MemoryInput, Message, MessageInput } from './store.js'

/** New records with ids (time-ordered UUIDs), defaults and timestamps, made the same way whichever store keeps them. */
export function newAgent (orgId: string, input: AgentInput): Agent {
  const now = isoTime()
  return {
    id: `agent-${uuidV7()}`,
    organization_id: orgId,
    name: input.name ?? 'Unnamed agent',
    description: input.description ?? null,
    system: input.system ?? null,
    llm_config: input.llm_config ?? {},
    metadata: input.metadata ?? {},
    created_at: now,
    updated_at: now
  }
}

export function newMessage (input: MessageInput): Message {
  // Field by field rather than a spread: one per message, two per turn.
  return {
    id: `msg-${uuidV7()}`,
    organization_id: input.organization_id,
    agent_id: input.agent_id,
    user_id: input.user_id,
    session_id: input.session_id,
    role: input.role,
    content: input.content,
    metadata: input.metadata,
    created_at: isoTime()
  }
}

export function newMemory (orgId: string, agentId: string, input: MemoryInput): Memory {
  const now = isoTime()
  return {
    id: `mem-${uuidV7()}`,
    organization_id: orgId,
    agent_id: agentId,
    user_id: input.user_id,
    session_id: input.session_id ?? null,
    content: input.content,
    memory_type: input.memory_type ?? 'Semantic',
    importance: input.importance ?? 0.5,
    metadata: input.metadata ?? {},
    created_at: now,
    updated_at: now
  }
}

export function newApiKey (input: ApiKeyInput): ApiKey {
  return {
    id: `key-${uuidV7()}`,
    organization_id: input.organization_id,
    name: input.name,
    roles: input.roles,
    created_at: isoTime(),
    last_used_at: null,
    expires_at: input.expires_at,
    revoked_at: null
  }
}
