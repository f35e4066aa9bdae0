import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { randomUUID } from 'node:crypto'
import Database from 'better-sqlite3'
import type { Agent, AgentInput, AgentPatch, HistoryQuery, Message, MessageInput, Page, Store } from './store.js'

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
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
   CREATE INDEX messages_by_session ON messages (organization_id, agent_id, session_id, seq);`
]

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

const toAgent = (row: AgentRow): Agent => ({
  ...row,
  llm_config: JSON.parse(row.llm_config),
  metadata: JSON.parse(row.metadata)
})

const toMessage = (row: MessageRow): Message => ({ ...row, metadata: JSON.parse(row.metadata) })

const MESSAGE_COLUMNS = 'id, organization_id, agent_id, user_id, session_id, role, content, metadata, created_at'

/** `sqlite:./path.db`, `sqlite:/abs/path.db` or `sqlite::memory:` */
export function sqlitePathFromUrl (url: string): string {
  return url.slice('sqlite:'.length)
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite'
  readonly #db: Database.Database
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
    this.#stmts = {
      insertAgent: db.prepare(`INSERT INTO agents (id, organization_id, name, description, system, llm_config, metadata, created_at, updated_at)
        VALUES (@id, @organization_id, @name, @description, @system, @llm_config, @metadata, @created_at, @updated_at)`),
      getAgent: db.prepare<[string, string], AgentRow>('SELECT * FROM agents WHERE organization_id = ? AND id = ?'),
      listAgents: db.prepare<[string, number, number], AgentRow>(
        'SELECT * FROM agents WHERE organization_id = ? ORDER BY created_at, id LIMIT ? OFFSET ?'),
      updateAgent: db.prepare(`UPDATE agents SET name = @name, description = @description, system = @system,
        llm_config = @llm_config, metadata = @metadata, updated_at = @updated_at WHERE organization_id = @organization_id AND id = @id`),
      deleteAgent: db.prepare<[string, string]>('DELETE FROM agents WHERE organization_id = ? AND id = ?'),
      insertMessage: db.prepare(`INSERT INTO messages (id, organization_id, agent_id, user_id, session_id, role, content, metadata, created_at)
        VALUES (@id, @organization_id, @agent_id, @user_id, @session_id, @role, @content, @metadata, @created_at)`),
      listMessages: db.prepare<[string, string, number], MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM (SELECT seq, ${MESSAGE_COLUMNS}
        FROM messages WHERE organization_id = ? AND agent_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq`),
      listSessionMessages: db.prepare<[string, string, string, number], MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM (SELECT seq,
        ${MESSAGE_COLUMNS} FROM messages WHERE organization_id = ? AND agent_id = ? AND session_id = ? ORDER BY seq DESC LIMIT ?)
        ORDER BY seq`)
    }
  }

  async createAgent (orgId: string, input: AgentInput): Promise<Agent> {
    const now = new Date().toISOString()
    const agent: Agent = {
      id: `agent-${randomUUID()}`,
      organization_id: orgId,
      name: input.name,
      description: input.description ?? null,
      system: input.system ?? null,
      llm_config: input.llm_config ?? {},
      metadata: input.metadata ?? {},
      created_at: now,
      updated_at: now
    }
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
    const message: Message = { ...input, id: `msg-${randomUUID()}`, created_at: new Date().toISOString() }
    this.#stmts.insertMessage.run({ ...message, metadata: JSON.stringify(message.metadata) })
    return message
  }

  async listMessages (orgId: string, agentId: string, query: HistoryQuery): Promise<Message[]> {
    const rows = query.sessionId === undefined
      ? this.#stmts.listMessages.all(orgId, agentId, query.limit)
      : this.#stmts.listSessionMessages.all(orgId, agentId, query.sessionId, query.limit)
    return rows.map(toMessage)
  }

  async close (): Promise<void> {
    if (this.#db.open) this.#db.close()
  }
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
