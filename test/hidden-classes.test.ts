import t from 'tap'
import { runModuleScript } from './helpers/module-script.js'

/*
 * In this V8 (Node 20), an object made by a spread and then a key its source lacks
 * (`{ ...ctx, principal }`, `{ ...carried, ...headers }`) gets a hidden class (map) of its own:
 * in a loop of 20,000, eight shared one. Made once per request, that is a new map per request,
 * and the request's young objects then outlived two scavenges: a GET of an agent (10 connections)
 * promoted some 300 KB to the old generation per scavenge, 1 KB once these objects were made
 * otherwise; a short stream's turn, 1.1 MB and 5 KB (with no stream kept for resumes, whose
 * replay is meant to last). Object.assign onto `{}`, or a literal, takes the shared transitions.
 * The objects the request path builds per request must share their maps; V8 says whether they
 * do (`%HaveSameMap`, behind --allow-natives-syntax, so it runs in a child process).
 */
const url = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href)

const script = `
  import http from 'node:http'
  import net from 'node:net'
  import { authed } from ${url('../lib/routes/context.ts')}
  import { AppResponse } from ${url('../lib/http/response.ts')}
  import { sendJson } from ${url('../lib/http/respond.ts')}
  import { SSE_HEADERS } from ${url('../lib/sse/writer.ts')}
  import { RuleBasedExtractor } from ${url('../lib/memory/extractor.ts')}
  import { MemoryService } from ${url('../lib/memory/service.ts')}
  // Parsed by V8 itself (natives syntax), not by the test's TypeScript loader.
  const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)')
  // The first few objects of a site share a map either way: the 49th and 50th tell.
  const ROUNDS = 50
  const settled = (objects) => objects.length === ROUNDS && sameMap(objects[ROUNDS - 2], objects[ROUNDS - 1])
  const made = async (make) => { const objects = []; for (let i = 0; i < ROUNDS; i++) objects.push(await make(i)); return objects }
  const out = {}

  // What V8 does with the two ways to write it, for the record.
  out.spreadThenKey = settled(await made((i) => ({ ...{ a: i }, b: i })))
  out.assignThenKey = settled(await made((i) => Object.assign({}, { a: i }, { b: i })))

  // The context an authenticated route handler gets.
  const principal = { userId: 'u', orgId: 'o', roles: [], admin: false }
  const contexts = []
  const handler = authed({ authenticate: async () => principal }, async (ctx) => { contexts.push(ctx) })
  for (let i = 0; i < ROUNDS; i++) await handler({ req: {}, res: {}, params: { id: String(i) }, query: new URLSearchParams() })
  out.authedContext = settled(contexts)

  // The headers every response's head is written from: carried ones merged with the route's.
  const heads = []
  http.ServerResponse.prototype.writeHead = function (status, headers) { heads.push(headers); return this }
  for (let i = 0; i < ROUNDS; i++) {
    const res = new AppResponse(new http.IncomingMessage(new net.Socket()))
    res.carry('X-Request-Id', 'req-' + i)
    res.vary('Origin')
    res.writeHead(200, SSE_HEADERS)
  }
  out.responseHead = settled(heads)

  // A JSON answer with headers of its own (an error's Retry-After, say).
  const jsonHeads = []
  const stub = { writeHead: (status, headers) => { jsonHeads.push(headers) }, end: () => {} }
  for (let i = 0; i < ROUNDS; i++) sendJson(stub, 429, { code: 'limit' }, { 'Retry-After': String(i) })
  out.jsonHead = settled(jsonHeads)

  // The built-in extractor's decisions, whatever the action (here UPDATE and NOOP in turn).
  const extractor = new RuleBasedExtractor()
  const existing = [{ id: 'mem-1', content: "User's name is Ada" }]
  const decisions = await made(async (i) => (await extractor.extract({ userMessage: i % 2 === 0 ? 'My name is Grace' : 'My name is Ada', reply: '', existing }))[0])
  out.decisions = settled(decisions) && decisions[ROUNDS - 2].action === 'UPDATE' && decisions[ROUNDS - 1].action === 'NOOP'

  // What a memory added by a turn (or the API) goes to the store as, its vector (if any) with it.
  const inputs = []
  const service = new MemoryService({ addMemory: async (orgId, agentId, input) => { inputs.push(input); return { id: 'mem', content: input.content } } })
  const scope = { orgId: 'o', agentId: 'a', userId: 'u' }
  for (let i = 0; i < ROUNDS; i++) await service.add(scope, i % 2 === 0 ? { user_id: 'u', content: 'c' + i } : { user_id: 'u', content: 'c', memory_type: 'Episodic', importance: 0.7 }, AbortSignal.abort())
  out.memoryInput = settled(inputs)
  console.log(JSON.stringify(out))
`

t.test('the objects built per request share their hidden classes', async (t) => {
  const { code, stdout } = await runModuleScript(script, ['--allow-natives-syntax'])
  t.equal(code, 0, 'the script ran to its end')
  const out = JSON.parse(stdout) as Record<string, boolean>
  t.comment(`in this V8, a spread then a new key shares its map: ${String(out.spreadThenKey)}; Object.assign: ${String(out.assignThenKey)}`)
  t.equal(out.authedContext, true, 'an authenticated handler\'s context')
  t.equal(out.responseHead, true, 'a response head, carried headers merged')
  t.equal(out.jsonHead, true, 'a JSON answer\'s head with headers of its own')
  t.equal(out.decisions, true, 'the built-in extractor\'s decisions, UPDATE and NOOP alike')
  t.equal(out.memoryInput, true, 'a memory to add, whichever fields it came with')
})
