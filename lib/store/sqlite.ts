import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { createHash } from 'node:crypto'
import Database from 'better-sqlite3'
import { ftsWords } from './search.js'
import { newAgent, newApiKey, newMemory, newMessage } from './records.js'
import type {
  Agent, AgentInput, AgentPatch, ApiKey, ApiKeyInput, HistoryQuery, Memory, MemoryInput, MemoryPatch, MemoryQuery, MemorySearch, MemoryVector,
  Message, MessageInput, Page, Store
} from './store.js'

/** Versioned, append-only: a database at version N gets migrations N+1.. applied in one transaction each. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE agents (
     id TEXT PRIMARY KEY,
     organization_id TEXT NOT NULL,
     name TEXT NOT NULL,
     description TEXT,
     system TEXT,
     llm_config TEXT NOT NULL,
     metadata TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE INDEX agents_by_org ON agents (organization_id, created_at);
   CREATE TABLE messages (
     seq INTEGER PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     organization_id TEXT NOT NULL,
     agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
     user_id TEXT NOT NULL,
     session_id TEXT NOT NULL,
     role TEXT NOT NULL,
     content TEXT NOT NULL,
     metadata TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE INDEX messages_by_session ON messages (organization_id, agent_id, session_id, seq);`,
  `CREATE TABLE memories (
     seq INTEGER PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     organization_id TEXT NOT NULL,
     agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
     user_id TEXT NOT NULL,
     session_id TEXT,
     content TEXT NOT NULL,
     memory_type TEXT NOT NULL,
     importance REAL NOT NULL,
     metadata TEXT NOT NULL,
     embedding TEXT,
     scope TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE INDEX memories_by_agent_user ON memories (organization_id, agent_id, user_id, seq);
   CREATE VIRTUAL TABLE memories_fts USING fts5 (content, scope, content = 'memories', content_rowid = 'seq', tokenize = 'porter unicode61');
   CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
     INSERT INTO memories_fts (rowid, content, scope) VALUES (new.seq, new.content, new.scope);
   END;
   CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
     INSERT INTO memories_fts (memories_fts, rowid, content, scope) VALUES ('delete', old.seq, old.content, old.scope);
   END;
   CREATE TRIGGER memories_au AFTER UPDATE OF content ON memories BEGIN
     INSERT INTO memories_fts (memories_fts, rowid, content, scope) VALUES ('delete', old.seq, old.content, old.scope);
     INSERT INTO memories_fts (rowid, content, scope) VALUES (new.seq, new.content, new.scope);
   END;`,
  `CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     organization_id TEXT NOT NULL,
     name TEXT NOT NULL,
     roles TEXT NOT NULL,
     key_hash TEXT NOT NULL UNIQUE,
     created_at TEXT NOT NULL,
     last_used_at TEXT,
     expires_at TEXT,
     revoked_at TEXT
   );
   CREATE INDEX api_keys_by_org ON api_keys (organization_id, created_at);`
]

const MEMORY_COLUMNS = 'm.id, m.organization_id, m.agent_id, m.user_id, m.session_id, m.content, m.memory_type, m.importance, m.metadata, m.created_at, m.updated_at'

/** Words of free text as an FTS5 OR-query of quoted terms, so user input is never FTS syntax. */
export function ftsQuery (text: string): string | null {
  return ftsWords(text)?.map((w) => `"${w}"`).join(' OR ') ?? null
}

/**
 * One FTS token naming (org, agent, user), so a search intersects with that user's memories
 * inside the index instead of ranking every tenant's matches and filtering afterwards.
 */
export function scopeToken (orgId: string, agentId: string, userId: string): string {
  return 's' + createHash('sha256').update(`${orgId}\0${agentId}\0${userId}`).digest('hex').slice(0, 24)
}

interface AgentRow {
  id: string
  organization_id: string
  name: string
  description: string | null
  system: string | null
  llm_config: string
  metadata: string
  created_at: string
  updated_at: string
}

interface MessageRow extends Omit<Message, 'metadata'> {
  metadata: string
}

interface MemoryRow extends Omit<Memory, 'metadata'> {
  metadata: string
}

const toMemory = (row: MemoryRow): Memory => ({ ...row, metadata: JSON.parse(row.metadata) })

const toAgent = (row: AgentRow): Agent => ({
  ...row,
  llm_config: JSON.parse(row.llm_config),
  metadata: JSON.parse(row.metadata)
})

const API_KEY_COLUMNS = 'id, organization_id, name, roles, created_at, last_used_at, expires_at, revoked_at'
interface ApiKeyRow extends Omit<ApiKey, 'roles'> { roles: string }
const toApiKey = (row: ApiKeyRow): ApiKey => ({ ...row, roles: JSON.parse(row.roles) as string[] })

interface MemoryPageParams { org: string, agent: string | null, user: string | null, type: string | null, limit: number, offset: number }

const MEMORY_FILTER = `m.organization_id = @org AND (@agent IS NULL OR m.agent_id = @agent) AND (@user IS NULL OR m.user_id = @user)
  AND (@type IS NULL OR m.memory_type = @type)`
/** The column each sort orders by; creation order is the insertion order. */
const SORT_COLUMNS: Record<NonNullable<MemoryQuery['sortBy']>, string> = { created_at: 'seq', updated_at: 'updated_at', importance: 'importance' }

interface HistoryParams { org: string, agent: string, session: string | null, user: string | null, limit: number }

const toMessage = (row: MessageRow): Message => ({ ...row, metadata: JSON.parse(row.metadata) })

const MESSAGE_COLUMNS = 'id, organization_id, agent_id, user_id, session_id, role, content, metadata, created_at'

/** `sqlite:./path.db`, `sqlite:/abs/path.db` or `sqlite::memory:` */
export function sqlitePathFromUrl (url: string): string {
  return url.slice('sqlite:'.length)
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite'
  readonly #db: Database.Database
  readonly #insertMessages: (messages: Message[]) => void
  readonly #pages = new Map<string, Database.Statement<MemoryPageParams, MemoryRow>>()
  readonly #stmts

  constructor (path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
    const db = new Database(path)
    // WAL + NORMAL survives a process crash (kill -9) without losing committed rows.
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.pragma('foreign_keys = ON')
    db.pragma('busy_timeout = 5000')
    migrate(db)
    this.#db = db
    // One transaction: one WAL commit for a whole batch of messages.
    this.#insertMessages = db.transaction((messages: Message[]) => {
      for (const message of messages) this.#insertMessage(message)
    })
    this.#stmts = {
      insertAgent: db.prepare(`INSERT INTO agents (id, organization_id, name, description, system, llm_config, metadata, created_at, updated_at)
        VALUES (@id, @organization_id, @name, @description, @system, @llm_config, @metadata, @created_at, @updated_at)`),
      getAgent: db.prepare<[string, string], AgentRow>('SELECT * FROM agents WHERE organization_id = ? AND id = ?'),
      listAgents: db.prepare<[string, number, number], AgentRow>(
        'SELECT * FROM agents WHERE organization_id = ? ORDER BY created_at, rowid LIMIT ? OFFSET ?'),
      updateAgent: db.prepare(`UPDATE agents SET name = @name, description = @description, system = @system,
        llm_config = @llm_config, metadata = @metadata, updated_at = @updated_at WHERE organization_id = @organization_id AND id = @id`),
      deleteAgent: db.prepare<[string, string]>('DELETE FROM agents WHERE organization_id = ? AND id = ?'),
      // Positional: binding nine named parameters from an object cost more than the insert itself.
      insertMessage: db.prepare<[string, string, string, string, string, string, string, string, string]>(`INSERT INTO messages
        (id, organization_id, agent_id, user_id, session_id, role, content, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      // Two statements, so a session's history is read through its index; the user is a filter on top.
      listMessages: db.prepare<HistoryParams, MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM (SELECT seq, ${MESSAGE_COLUMNS}
        FROM messages WHERE organization_id = @org AND agent_id = @agent AND (@user IS NULL OR user_id = @user) ORDER BY seq DESC LIMIT @limit)
        ORDER BY seq`),
      listSessionMessages: db.prepare<HistoryParams, MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM (SELECT seq, ${MESSAGE_COLUMNS}
        FROM messages WHERE organization_id = @org AND agent_id = @agent AND session_id = @session AND (@user IS NULL OR user_id = @user)
        ORDER BY seq DESC LIMIT @limit) ORDER BY seq`),
      // Positional, as insertMessage: a memory plus its embedding and scope as named parameters
      // took a spread and new keys, an object of its own kind per insert (test/hidden-classes.test.ts).
      insertMemory: db.prepare<[string, string, string, string, string | null, string, string, number, string, string | null, string, string, string]>(
        `INSERT INTO memories (id, organization_id, agent_id, user_id, session_id, content, memory_type, importance, metadata, embedding,
        scope, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      ping: db.prepare('SELECT 1'),
      countMemories: db.prepare<MemoryPageParams, { n: number }>(`SELECT count(*) AS n FROM memories m WHERE ${MEMORY_FILTER}`),
      hasMemories: db.prepare<[string, string, string], { one: number }>(
        'SELECT 1 AS one FROM memories WHERE organization_id = ? AND agent_id = ? AND user_id = ? LIMIT 1'),
      getMemory: db.prepare<[string, string], MemoryRow>(`SELECT ${MEMORY_COLUMNS} FROM memories m WHERE m.organization_id = ? AND m.id = ?`),
      // bm25() is lower for better matches, weighing the text only; recency breaks ties. The scope
      // token narrows the match; the column checks keep isolation exact even if two scopes collided.
      searchMemories: db.prepare<[string, string, string, string, number], MemoryRow>(`SELECT ${MEMORY_COLUMNS}
        FROM memories_fts JOIN memories m ON m.seq = memories_fts.rowid
        WHERE memories_fts MATCH ? AND m.organization_id = ? AND m.agent_id = ? AND m.user_id = ?
        ORDER BY bm25(memories_fts, 1.0, 0.0), m.seq DESC LIMIT ?`),
      memoryVectors: db.prepare<[string, string, string, number], { id: string, embedding: string }>(`SELECT id, embedding FROM memories
        WHERE organization_id = ? AND agent_id = ? AND user_id = ? AND embedding IS NOT NULL ORDER BY seq DESC LIMIT ?`),
      // A new text without a new vector drops the old vector: it no longer describes the memory.
      updateMemory: db.prepare(`UPDATE memories SET memory_type = @memory_type, importance = @importance, metadata = @metadata,
        embedding = CASE WHEN @replace_vector = 1 THEN @embedding WHEN content <> @content THEN NULL ELSE embedding END,
        content = @content, updated_at = @updated_at WHERE organization_id = @organization_id AND id = @id`),
      deleteMemory: db.prepare<[string, string]>('DELETE FROM memories WHERE organization_id = ? AND id = ?'),
      insertApiKey: db.prepare(`INSERT INTO api_keys (id, organization_id, name, roles, key_hash, created_at, expires_at)
        VALUES (@id, @organization_id, @name, @roles, @key_hash, @created_at, @expires_at)`),
      findApiKey: db.prepare<[string], ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?`),
      listApiKeys: db.prepare<[string], ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE organization_id = ? ORDER BY created_at, id`),
      revokeApiKey: db.prepare<{ org: string | null, id: string, at: string }>(`UPDATE api_keys SET revoked_at = @at
        WHERE id = @id AND (@org IS NULL OR organization_id = @org) AND revoked_at IS NULL`),
      touchApiKey: db.prepare<[string, string]>('UPDATE api_keys SET last_used_at = ? WHERE id = ?')
    }
  }

  async createAgent (orgId: string, input: AgentInput): Promise<Agent> {
    const agent = newAgent(orgId, input)
    this.#stmts.insertAgent.run(toAgentRow(agent))
    return agent
  }

  async getAgent (orgId: string, agentId: string): Promise<Agent | null> {
    const row = this.#stmts.getAgent.get(orgId, agentId)
    return row === undefined ? null : toAgent(row)
  }

  async listAgents (orgId: string, page: Page): Promise<Agent[]> {
    return this.#stmts.listAgents.all(orgId, page.limit, page.offset).map(toAgent)
  }

  async updateAgent (orgId: string, agentId: string, patch: AgentPatch): Promise<Agent | null> {
    const current = await this.getAgent(orgId, agentId)
    if (current === null) return null
    const next: Agent = { ...current, ...patch, updated_at: new Date().toISOString() }
    this.#stmts.updateAgent.run(toAgentRow(next))
    return next
  }

  async deleteAgent (orgId: string, agentId: string): Promise<boolean> {
    return this.#stmts.deleteAgent.run(orgId, agentId).changes > 0
  }

  async appendMessage (input: MessageInput): Promise<Message> {
    const message = newMessage(input)
    this.#insertMessage(message)
    return message
  }

  #insertMessage (m: Message): void {
    this.#stmts.insertMessage.run(m.id, m.organization_id, m.agent_id, m.user_id, m.session_id, m.role, m.content, JSON.stringify(m.metadata), m.created_at)
  }

  async appendMessages (inputs: MessageInput[]): Promise<Message[]> {
    const messages = inputs.map(newMessage)
    this.#insertMessages(messages)
    return messages
  }

  async listMessages (orgId: string, agentId: string, query: HistoryQuery): Promise<Message[]> {
    const params = { org: orgId, agent: agentId, session: query.sessionId ?? null, user: query.userId ?? null, limit: query.limit }
    return (query.sessionId === undefined ? this.#stmts.listMessages : this.#stmts.listSessionMessages).all(params).map(toMessage)
  }

  async addMemory (orgId: string, agentId: string, input: MemoryInput): Promise<Memory> {
    const m = newMemory(orgId, agentId, input)
    this.#stmts.insertMemory.run(m.id, m.organization_id, m.agent_id, m.user_id, m.session_id, m.content, m.memory_type, m.importance,
      JSON.stringify(m.metadata), toVectorText(input.embedding), scopeToken(orgId, agentId, m.user_id), m.created_at, m.updated_at)
    return m
  }

  async getMemory (orgId: string, memoryId: string): Promise<Memory | null> {
    const row = this.#stmts.getMemory.get(orgId, memoryId)
    return row === undefined ? null : toMemory(row)
  }

  async listMemories (orgId: string, query: MemoryQuery): Promise<{ memories: Memory[], total: number }> {
    const params = { org: orgId, agent: query.agentId ?? null, user: query.userId ?? null, type: query.memoryType ?? null, limit: query.limit, offset: query.offset }
    const total = (this.#stmts.countMemories.get(params) as { n: number }).n
    return { memories: this.#memoryPage(query).all(params).map(toMemory), total }
  }

  /** One statement per sort, prepared when first used. */
  #memoryPage (query: MemoryQuery): Database.Statement<MemoryPageParams, MemoryRow> {
    const key = `${query.sortBy ?? 'created_at'} ${query.order ?? 'desc'}`
    let stmt = this.#pages.get(key)
    if (stmt === undefined) {
      const order = query.order === 'asc' ? 'ASC' : 'DESC'
      stmt = this.#db.prepare<MemoryPageParams, MemoryRow>(`SELECT ${MEMORY_COLUMNS} FROM memories m WHERE ${MEMORY_FILTER}
        ORDER BY m.${SORT_COLUMNS[query.sortBy ?? 'created_at']} ${order}, m.seq ${order} LIMIT @limit OFFSET @offset`)
      this.#pages.set(key, stmt)
    }
    return stmt
  }

  async hasMemories (orgId: string, agentId: string, userId: string): Promise<boolean> {
    return this.#stmts.hasMemories.get(orgId, agentId, userId) !== undefined
  }

  async searchMemories (orgId: string, agentId: string, search: MemorySearch): Promise<Memory[]> {
    const terms = ftsQuery(search.query)
    // Most users have few or no memories yet: an index probe is far cheaper than an empty FTS search.
    if (terms === null || this.#stmts.hasMemories.get(orgId, agentId, search.userId) === undefined) return []
    const match = `scope:${scopeToken(orgId, agentId, search.userId)} AND content:(${terms})`
    return this.#stmts.searchMemories.all(match, orgId, agentId, search.userId, search.limit).map(toMemory)
  }

  async memoryVectors (orgId: string, agentId: string, userId: string, limit: number): Promise<MemoryVector[]> {
    return this.#stmts.memoryVectors.all(orgId, agentId, userId, limit).map((r) => ({ id: r.id, embedding: JSON.parse(r.embedding) }))
  }

  async getMemoriesByIds (orgId: string, ids: string[]): Promise<Memory[]> {
    const found: Memory[] = []
    for (const id of ids) {
      const row = this.#stmts.getMemory.get(orgId, id)
      if (row !== undefined) found.push(toMemory(row))
    }
    return found
  }

  async updateMemory (orgId: string, memoryId: string, patch: MemoryPatch): Promise<Memory | null> {
    const current = await this.getMemory(orgId, memoryId)
    if (current === null) return null
    const { embedding, ...fields } = patch
    const next: Memory = { ...current, ...fields, updated_at: new Date().toISOString() }
    this.#stmts.updateMemory.run({
      ...next,
      metadata: JSON.stringify(next.metadata),
      replace_vector: embedding === undefined ? 0 : 1,
      embedding: toVectorText(embedding)
    })
    return next
  }

  async deleteMemory (orgId: string, memoryId: string): Promise<boolean> {
    return this.#stmts.deleteMemory.run(orgId, memoryId).changes > 0
  }

  async createApiKey (input: ApiKeyInput): Promise<ApiKey> {
    const key = newApiKey(input)
    this.#stmts.insertApiKey.run({ ...key, roles: JSON.stringify(key.roles), key_hash: input.key_hash })
    return key
  }

  async findApiKey (keyHash: string): Promise<ApiKey | null> {
    const row = this.#stmts.findApiKey.get(keyHash)
    return row === undefined ? null : toApiKey(row)
  }

  async listApiKeys (orgId: string): Promise<ApiKey[]> {
    return this.#stmts.listApiKeys.all(orgId).map(toApiKey)
  }

  async revokeApiKey (orgId: string | null, id: string): Promise<boolean> {
    return this.#stmts.revokeApiKey.run({ org: orgId, id, at: new Date().toISOString() }).changes > 0
  }

  async touchApiKey (id: string, at: string): Promise<void> {
    this.#stmts.touchApiKey.run(at, id)
  }

  async ping (): Promise<void> {
    this.#stmts.ping.get()
  }

  async close (): Promise<void> {
    if (this.#db.open) this.#db.close()
  }
}

function toVectorText (embedding: number[] | null | undefined): string | null {
  return embedding == null ? null : JSON.stringify(embedding)
}

function toAgentRow (agent: Agent): AgentRow {
  return { ...agent, llm_config: JSON.stringify(agent.llm_config), metadata: JSON.stringify(agent.metadata) }
}

function migrate (db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string)
      db.pragma(`user_version = ${v + 1}`)
    })()
  }
}
