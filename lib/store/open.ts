import { PostgresStore } from './postgres.js'
import { SqliteStore, sqlitePathFromUrl } from './sqlite.js'
import type { Store } from './store.js'

/** `sqlite:…` is the embedded default; `postgres://…` is for several instances sharing one database. */
export async function openStore (url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) return new SqliteStore(sqlitePathFromUrl(url))
  return await PostgresStore.open({ connectionString: url })
}
