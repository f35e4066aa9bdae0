import pg from 'pg'
import { ftsWords } from './search.js'
import { newAgent, newApiKey, newMemory, newMessage } from './records.js'
import type {
  Agent, AgentInput, AgentPatch, ApiKey, ApiKeyInput, HistoryQuery, Memory, MemoryInput, MemoryPatch, MemoryQuery, MemorySearch, MemoryVector,
  Message, MessageInput, Page, Store
} from './store.js'

/**
 * Versioned, append-only, applied at start-up under an advisory lock so that several instances
 * starting together migrate once.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE agents (
     seq bigserial UNIQUE,
     id text PRIMARY KEY,
     organization_id text NOT NULL,
     name text NOT NULL,
     description text,
     system text,
     llm_config jsonb NOT NULL,
     metadata jsonb NOT NULL,
     created_at text NOT NULL,
     updated_at text NOT NULL
   );
   CREATE INDEX agents_by_org ON agents (organization_id, created_at);
   CREATE TABLE messages (
     seq bigserial PRIMARY KEY,
     id text NOT NULL UNIQUE,
     organization_id text NOT NULL,
     agent_id text NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
     user_id text NOT NULL,
     session_id text NOT NULL,
     role text NOT NULL,
     content text NOT NULL,
     metadata jsonb NOT NULL,
     created_at text NOT NULL
   );
   CREATE INDEX messages_by_session ON messages (organization_id, agent_id, session_id, seq);
   CREATE TABLE memories (
     seq bigserial PRIMARY KEY,
     id text NOT NULL UNIQUE,
     organization_id text NOT NULL,
     agent_id text NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
     user_id text NOT NULL,
     session_id text,
     content text NOT NULL,
     memory_type text NOT NULL,
     importance real NOT NULL,
     metadata jsonb NOT NULL,
     embedding jsonb,
     tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
     created_at text NOT NULL,
     updated_at text NOT NULL
   );
   CREATE INDEX memories_by_agent_user ON memories (organization_id, agent_id, user_id, seq);
   CREATE INDEX memories_tsv ON memories USING gin (tsv);`,
  `CREATE TABLE api_keys (
     id text PRIMARY KEY,
     organization_id text NOT NULL,
     name text NOT NULL,
     roles jsonb NOT NULL,
     key_hash text NOT NULL UNIQUE,
     created_at text NOT NULL,
     last_used_at text,
     expires_at text,
     revoked_at text
   );
   CREATE INDEX api_keys_by_org ON api_keys (organization_id, created_at);`
]

const MIGRATION_LOCK = 0x61676d73 // 'agms'

const API_KEY_COLUMNS = 'id, organization_id, name, roles, created_at, last_used_at, expires_at, revoked_at'
const AGENT_COLUMNS = 'id, organization_id, name, description, system, llm_config, metadata, created_at, updated_at'
const MESSAGE_COLUMNS = 'id, organization_id, agent_id, user_id, session_id, role, content, metadata, created_at'
/** The column each sort orders by; creation order is the insertion order. */
const SORT_COLUMNS: Record<NonNullable<MemoryQuery['sortBy']>, string> = { created_at: 'seq', updated_at: 'updated_at', importance: 'importance' }

const MEMORY_COLUMNS = 'id, organization_id, agent_id, user_id, session_id, content, memory_type, importance, metadata, created_at, updated_at'

/** A batch of messages in input order (the order their `seq` is drawn in), from one text array per column. */
const INSERT_MESSAGES = `INSERT INTO messages (${MESSAGE_COLUMNS})
  SELECT id, organization_id, agent_id, user_id, session_id, role, content, metadata::jsonb, created_at
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
    WITH ORDINALITY AS batch (${MESSAGE_COLUMNS}, n)
  ORDER BY n`

const NEEDS_ESCAPE = /["\\]/
const ESCAPED = /["\\]/g

/**
 * A `text[]` literal of `values`, as pg writes one (every element quoted, `\` and `"` escaped),
 * but with one test per element where pg makes two replaces: ids and timestamps need no escape.
 * The batched insert sends nine of them per commit.
 */
function textArray (values: readonly string[]): string {
  let out = '{'
  for (let i = 0; i < values.length; i++) {
    const value = values[i] as string
    out += `${i === 0 ? '"' : ',"'}${NEEDS_ESCAPE.test(value) ? value.replace(ESCAPED, '\\$&') : value}"`
  }
  return `${out}}`
}

/** Statement names by text: every statement is prepared once per connection, so PostgreSQL parses and plans it once. */
const STATEMENTS = new Map<string, string>()

/** `sql` as a named statement. The texts are this file's constants (sort orders included), so the names stay few. */
function prepared (text: string, values: unknown[]): pg.QueryConfig {
  let name = STATEMENTS.get(text)
  if (name === undefined) {
    name = `agentmem_${STATEMENTS.size}`
    STATEMENTS.set(text, name)
  }
  return { name, text, values }
}

/** The same Store contract on PostgreSQL, for several instances sharing one database. */
export class PostgresStore implements Store {
  readonly kind = 'postgres'
  readonly #pool: pg.Pool

  private constructor (pool: pg.Pool) {
    this.#pool = pool
  }

  static async open (config: pg.PoolConfig): Promise<PostgresStore> {
    const pool = new pg.Pool({ max: 10, ...config })
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
      await client.query('CREATE TABLE IF NOT EXISTS agentmem_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())')
      const { rows } = await client.query<{ v: number }>('SELECT coalesce(max(version), 0) AS v FROM agentmem_migrations')
      for (let v = (rows[0] as { v: number }).v; v < MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v] as string)
        await client.query('INSERT INTO agentmem_migrations (version) VALUES ($1)', [v + 1])
      }
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK')
      throw err
    } finally {
      client.release()
    }
    return new PostgresStore(pool)
  }

  async #rows<T extends pg.QueryResultRow> (sql: string, params: unknown[]): Promise<T[]> {
    return (await this.#query<T>(sql, params)).rows
  }

  async #query<T extends pg.QueryResultRow> (sql: string, params: unknown[]): Promise<pg.QueryResult<T>> {
    return await this.#pool.query<T>(prepared(sql, params))
  }

  async createAgent (orgId: string, input: AgentInput): Promise<Agent> {
    const agent = newAgent(orgId, input)
    await this.#rows(`INSERT INTO agents (${AGENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [agent.id, orgId, agent.name, agent.description, agent.system, agent.llm_config, agent.metadata, agent.created_at, agent.updated_at])
    return agent
  }

  async getAgent (orgId: string, agentId: string): Promise<Agent | null> {
    const [row] = await this.#rows<Agent>(`SELECT ${AGENT_COLUMNS} FROM agents WHERE organization_id = $1 AND id = $2`, [orgId, agentId])
    return row ?? null
  }

  async listAgents (orgId: string, page: Page): Promise<Agent[]> {
    return await this.#rows<Agent>(`SELECT ${AGENT_COLUMNS} FROM agents WHERE organization_id = $1 ORDER BY created_at, seq LIMIT $2 OFFSET $3`,
      [orgId, page.limit, page.offset])
  }

  async updateAgent (orgId: string, agentId: string, patch: AgentPatch): Promise<Agent | null> {
    const current = await this.getAgent(orgId, agentId)
    if (current === null) return null
    const next: Agent = { ...current, ...patch, updated_at: new Date().toISOString() }
    await this.#rows(`UPDATE agents SET name = $3, description = $4, system = $5, llm_config = $6, metadata = $7, updated_at = $8
      WHERE organization_id = $1 AND id = $2`, [orgId, agentId, next.name, next.description, next.system, next.llm_config, next.metadata, next.updated_at])
    return next
  }

  async deleteAgent (orgId: string, agentId: string): Promise<boolean> {
    const result = await this.#query('DELETE FROM agents WHERE organization_id = $1 AND id = $2', [orgId, agentId])
    return (result.rowCount as number) > 0
  }

  async appendMessage (input: MessageInput): Promise<Message> {
    const message = newMessage(input)
    await this.#rows(`INSERT INTO messages (${MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
      message.id, message.organization_id, message.agent_id, message.user_id, message.session_id, message.role, message.content,
      message.metadata, message.created_at
    ])
    return message
  }

  /**
   * One INSERT of the whole batch: one round trip, one commit. Its rows come as one array per
   * column, so the statement is the same for any batch size and is prepared once.
   */
  async appendMessages (inputs: MessageInput[]): Promise<Message[]> {
    const messages = inputs.map(newMessage)
    const columns: string[][] = [[], [], [], [], [], [], [], [], []]
    for (const m of messages) {
      const row = [m.id, m.organization_id, m.agent_id, m.user_id, m.session_id, m.role, m.content, JSON.stringify(m.metadata), m.created_at]
      row.forEach((value, i) => (columns[i] as string[]).push(value))
    }
    await this.#rows(INSERT_MESSAGES, columns.map(textArray))
    return messages
  }

  async listMessages (orgId: string, agentId: string, query: HistoryQuery): Promise<Message[]> {
    return await this.#rows<Message>(`SELECT ${MESSAGE_COLUMNS} FROM (SELECT seq, ${MESSAGE_COLUMNS} FROM messages
      WHERE organization_id = $1 AND agent_id = $2 AND ($3::text IS NULL OR session_id = $3) AND ($5::text IS NULL OR user_id = $5)
      ORDER BY seq DESC LIMIT $4) recent ORDER BY seq`,
    [orgId, agentId, query.sessionId ?? null, query.limit, query.userId ?? null])
  }

  async addMemory (orgId: string, agentId: string, input: MemoryInput): Promise<Memory> {
    const memory = newMemory(orgId, agentId, input)
    await this.#rows(`INSERT INTO memories (${MEMORY_COLUMNS}, embedding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, [
      memory.id, orgId, agentId, memory.user_id, memory.session_id, memory.content, memory.memory_type, memory.importance,
      memory.metadata, memory.created_at, memory.updated_at, vectorJson(input.embedding)
    ])
    return memory
  }

  async getMemory (orgId: string, memoryId: string): Promise<Memory | null> {
    const [row] = await this.#rows<Memory>(`SELECT ${MEMORY_COLUMNS} FROM memories WHERE organization_id = $1 AND id = $2`, [orgId, memoryId])
    return row ?? null
  }

  async listMemories (orgId: string, query: MemoryQuery): Promise<{ memories: Memory[], total: number }> {
    const filter = `organization_id = $1 AND ($2::text IS NULL OR agent_id = $2) AND ($3::text IS NULL OR user_id = $3) AND ($4::text IS NULL OR memory_type = $4)`
    const params = [orgId, query.agentId ?? null, query.userId ?? null, query.memoryType ?? null]
    // The sort column and direction come from fixed lists, never from the request's text.
    const order = query.order === 'asc' ? 'ASC' : 'DESC'
    const [memories, [count]] = await Promise.all([
      this.#rows<Memory>(`SELECT ${MEMORY_COLUMNS} FROM memories WHERE ${filter}
        ORDER BY ${SORT_COLUMNS[query.sortBy ?? 'created_at']} ${order}, seq ${order} LIMIT $5 OFFSET $6`, [...params, query.limit, query.offset]),
      this.#rows<{ n: string }>(`SELECT count(*) AS n FROM memories WHERE ${filter}`, params)
    ])
    return { memories, total: Number((count as { n: string }).n) }
  }

  async hasMemories (orgId: string, agentId: string, userId: string): Promise<boolean> {
    const rows = await this.#rows('SELECT 1 FROM memories WHERE organization_id = $1 AND agent_id = $2 AND user_id = $3 LIMIT 1', [orgId, agentId, userId])
    return rows.length > 0
  }

  async searchMemories (orgId: string, agentId: string, search: MemorySearch): Promise<Memory[]> {
    const words = ftsWords(search.query)
    if (words === null) return []
    // Words are letters and digits only, so joining them with | is a safe tsquery.
    return await this.#rows<Memory>(`SELECT ${MEMORY_COLUMNS} FROM memories, to_tsquery('english', $4) AS q
      WHERE organization_id = $1 AND agent_id = $2 AND user_id = $3 AND tsv @@ q
      ORDER BY ts_rank(tsv, q) DESC, seq DESC LIMIT $5`, [orgId, agentId, search.userId, words.join(' | '), search.limit])
  }

  async memoryVectors (orgId: string, agentId: string, userId: string, limit: number): Promise<MemoryVector[]> {
    return await this.#rows<MemoryVector>(`SELECT id, embedding FROM memories WHERE organization_id = $1 AND agent_id = $2 AND user_id = $3
      AND embedding IS NOT NULL ORDER BY seq DESC LIMIT $4`, [orgId, agentId, userId, limit])
  }

  async getMemoriesByIds (orgId: string, ids: string[]): Promise<Memory[]> {
    const rows = await this.#rows<Memory>(`SELECT ${MEMORY_COLUMNS} FROM memories WHERE organization_id = $1 AND id = ANY($2::text[])`, [orgId, ids])
    const byId = new Map(rows.map((m) => [m.id, m]))
    return ids.flatMap((id) => byId.get(id) ?? [])
  }

  async updateMemory (orgId: string, memoryId: string, patch: MemoryPatch): Promise<Memory | null> {
    const current = await this.getMemory(orgId, memoryId)
    if (current === null) return null
    const { embedding, ...fields } = patch
    const next: Memory = { ...current, ...fields, updated_at: new Date().toISOString() }
    // A new text without a new vector drops the old vector: it no longer describes the memory.
    await this.#rows(`UPDATE memories SET memory_type = $3, importance = $4, metadata = $5,
      embedding = CASE WHEN $6 THEN $7::jsonb WHEN content <> $8 THEN NULL ELSE embedding END, content = $8, updated_at = $9
      WHERE organization_id = $1 AND id = $2`,
    [orgId, memoryId, next.memory_type, next.importance, next.metadata, embedding !== undefined, vectorJson(embedding), next.content, next.updated_at])
    return next
  }

  async deleteMemory (orgId: string, memoryId: string): Promise<boolean> {
    const result = await this.#query('DELETE FROM memories WHERE organization_id = $1 AND id = $2', [orgId, memoryId])
    return (result.rowCount as number) > 0
  }

  async createApiKey (input: ApiKeyInput): Promise<ApiKey> {
    const key = newApiKey(input)
    await this.#rows(`INSERT INTO api_keys (id, organization_id, name, roles, key_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [key.id, key.organization_id, key.name, JSON.stringify(key.roles), input.key_hash, key.created_at, key.expires_at])
    return key
  }

  async findApiKey (keyHash: string): Promise<ApiKey | null> {
    const [row] = await this.#rows<ApiKey>(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1`, [keyHash])
    return row ?? null
  }

  async listApiKeys (orgId: string): Promise<ApiKey[]> {
    return await this.#rows<ApiKey>(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE organization_id = $1 ORDER BY created_at, id`, [orgId])
  }

  async revokeApiKey (orgId: string | null, id: string): Promise<boolean> {
    const rows = await this.#rows(`UPDATE api_keys SET revoked_at = $3 WHERE id = $2 AND ($1::text IS NULL OR organization_id = $1)
      AND revoked_at IS NULL RETURNING id`, [orgId, id, new Date().toISOString()])
    return rows.length > 0
  }

  async touchApiKey (id: string, at: string): Promise<void> {
    await this.#rows('UPDATE api_keys SET last_used_at = $2 WHERE id = $1', [id, at])
  }

  async ping (): Promise<void> {
    await this.#query('SELECT 1', [])
  }

  async close (): Promise<void> {
    await this.#pool.end()
  }
}

function vectorJson (embedding: number[] | null | undefined): string | null {
  return embedding == null ? null : JSON.stringify(embedding)
}
