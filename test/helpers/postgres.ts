import type { Test } from 'tap'
import pg from 'pg'
import { randomBytes } from 'node:crypto'

/** PostgreSQL of the machine (CI starts it); override with TEST_POSTGRES_URL. */
export const PG_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** A fresh schema for one test, dropped afterwards; returns a connection URL that uses it. */
export async function freshSchema (t: Test): Promise<string> {
  const schema = `t_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`CREATE SCHEMA ${schema}`)
  await admin.end()
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    await c.query(`DROP SCHEMA ${schema} CASCADE`)
    await c.end()
  })
  const url = new URL(PG_URL)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return url.toString()
}
