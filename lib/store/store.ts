/**
 * The persistence seam. The embedded default is SQLite; a PostgreSQL implementation must pass
 * the same test suite. Every method takes the organization id: isolation lives in the store's
 * queries, so a route cannot forget it.
 */
export interface LlmConfig {
  provider?: string
  model?: string
  temperature?: number
  max_tokens?: number
  top_p?: number
  [other: string]: unknown
}

export interface Agent {
  id: string
  organization_id: string
  name: string
  description: string | null
  system: string | null
  llm_config: LlmConfig
  metadata: Record<string, unknown>
  created_at: string
  updated_at: string
}

export interface AgentInput {
  /** AgentMem's UI may leave it out: a default name is given. */
  name?: string
  description?: string | null
  system?: string | null
  llm_config?: LlmConfig
  metadata?: Record<string, unknown>
}

export type AgentPatch = Partial<AgentInput>

export type MessageRole = 'user' | 'assistant'

export interface Message {
  id: string
  organization_id: string
  agent_id: string
  user_id: string
  session_id: string
  role: MessageRole
  content: string
  metadata: Record<string, unknown>
  created_at: string
}

export type MessageInput = Omit<Message, 'id' | 'created_at'>

export interface Page {
  limit: number
  offset: number
}

export interface HistoryQuery {
  sessionId?: string
  /** Only this user's messages; all users' when absent. */
  userId?: string
  limit: number
}

/** AgentMem's memory types. */
export const MEMORY_TYPES = ['Factual', 'Episodic', 'Procedural', 'Semantic', 'Working', 'Core', 'Resource', 'Knowledge', 'Contextual'] as const
export type MemoryType = typeof MEMORY_TYPES[number]

export interface Memory {
  id: string
  organization_id: string
  agent_id: string
  user_id: string
  session_id: string | null
  content: string
  memory_type: MemoryType
  importance: number
  metadata: Record<string, unknown>
  created_at: string
  updated_at: string
}

export interface MemoryInput {
  user_id: string
  session_id?: string | null
  content: string
  memory_type?: MemoryType
  importance?: number
  metadata?: Record<string, unknown>
  /** Kept for vector retrieval when an embedding model is configured. */
  embedding?: number[] | null
}

export type MemoryPatch = Partial<Pick<MemoryInput, 'content' | 'memory_type' | 'importance' | 'metadata' | 'embedding'>>

export const MEMORY_SORTS = ['created_at', 'updated_at', 'importance'] as const

/** A listing of an org's memories: every filter optional; newest first unless sorted otherwise. */
export interface MemoryQuery {
  agentId?: string
  userId?: string
  memoryType?: MemoryType
  sortBy?: typeof MEMORY_SORTS[number]
  order?: 'asc' | 'desc'
  limit: number
  offset: number
}

export interface MemorySearch {
  /** Free text; matched with the store's full-text ranking (BM25 in SQLite). */
  query: string
  userId: string
  limit: number
}

export interface MemoryVector {
  id: string
  embedding: number[]
}

/** An org's API key (AgentMem's `agm_…`): only a SHA-256 of the secret is ever stored. */
export interface ApiKey {
  id: string
  organization_id: string
  name: string
  roles: string[]
  created_at: string
  last_used_at: string | null
  /** ISO time after which the key no longer works; null: it does not expire. */
  expires_at: string | null
  revoked_at: string | null
}

export interface ApiKeyInput {
  organization_id: string
  name: string
  roles: string[]
  expires_at: string | null
  /** SHA-256 of the secret, hex. */
  key_hash: string
}

export interface Store {
  readonly kind: string
  createAgent: (orgId: string, input: AgentInput) => Promise<Agent>
  getAgent: (orgId: string, agentId: string) => Promise<Agent | null>
  listAgents: (orgId: string, page: Page) => Promise<Agent[]>
  updateAgent: (orgId: string, agentId: string, patch: AgentPatch) => Promise<Agent | null>
  deleteAgent: (orgId: string, agentId: string) => Promise<boolean>
  appendMessage: (input: MessageInput) => Promise<Message>
  /**
   * Several messages in one transaction (one round trip on PostgreSQL): all stored, in order, or
   * none. Optional for a store of your own: without it, questions and replies are stored one by one.
   */
  appendMessages?: (inputs: MessageInput[]) => Promise<Message[]>
  /** The newest `limit` messages, oldest first. */
  listMessages: (orgId: string, agentId: string, query: HistoryQuery) => Promise<Message[]>
  addMemory: (orgId: string, agentId: string, input: MemoryInput) => Promise<Memory>
  getMemory: (orgId: string, memoryId: string) => Promise<Memory | null>
  /** One page of the org's memories that match `query`, and how many match in all. */
  listMemories: (orgId: string, query: MemoryQuery) => Promise<{ memories: Memory[], total: number }>
  /**
   * Whether the user has any memory with this agent: an index probe, so a turn can skip the
   * search (and the cache of it, its round trip). Optional for a store of your own: without it,
   * every turn searches.
   */
  hasMemories?: (orgId: string, agentId: string, userId: string) => Promise<boolean>
  /** Best full-text matches first, newer first among equals. */
  searchMemories: (orgId: string, agentId: string, search: MemorySearch) => Promise<Memory[]>
  /** The newest `limit` memories that have an embedding. */
  memoryVectors: (orgId: string, agentId: string, userId: string, limit: number) => Promise<MemoryVector[]>
  getMemoriesByIds: (orgId: string, ids: string[]) => Promise<Memory[]>
  updateMemory: (orgId: string, memoryId: string, patch: MemoryPatch) => Promise<Memory | null>
  deleteMemory: (orgId: string, memoryId: string) => Promise<boolean>
  createApiKey: (input: ApiKeyInput) => Promise<ApiKey>
  /** The key with this secret's hash, revoked and expired ones included (the caller decides). */
  findApiKey: (keyHash: string) => Promise<ApiKey | null>
  listApiKeys: (orgId: string) => Promise<ApiKey[]>
  /** Revokes a key of `orgId` (any org when null, for the CLI); false when there is none to revoke. */
  revokeApiKey: (orgId: string | null, id: string) => Promise<boolean>
  touchApiKey: (id: string, at: string) => Promise<void>
  /** Throws when the store cannot serve (for readiness checks). */
  ping: () => Promise<void>
  close: () => Promise<void>
}
