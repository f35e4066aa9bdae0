import { schemas } from './schemas.js'
import { HTTP_STATUS } from './errors.js'
import { STREAM_ENDINGS } from './stream/outcomes.js'

/** What the document says of each route; the test checks every registered route has an entry. */
interface Operation {
  summary: string
  body?: keyof typeof schemas
  status: number
  /** The success response: a JSON envelope, an event stream, or nothing. */
  returns: 'json' | 'sse' | 'empty' | 'text' | 'html'
  public?: boolean
}

const OPERATIONS: Record<string, Operation> = {
  'POST /api/v1/agents': { summary: 'Create an agent', body: 'createAgent', status: 201, returns: 'json' },
  'GET /api/v1/agents': { summary: 'List agents (limit, offset)', status: 200, returns: 'json' },
  'GET /api/v1/agents/{id}': { summary: 'Get an agent', status: 200, returns: 'json' },
  'PUT /api/v1/agents/{id}': { summary: 'Update an agent', body: 'updateAgent', status: 200, returns: 'json' },
  'DELETE /api/v1/agents/{id}': { summary: 'Delete an agent and its conversation', status: 204, returns: 'empty' },
  'POST /api/v1/agents/{id}/chat/stream': { summary: 'Stream a chat reply as Server-Sent Events', body: 'chatRequest', status: 200, returns: 'sse' },
  'POST /api/v1/agents/{id}/chat': { summary: 'Chat, answered once', body: 'chatRequest', status: 200, returns: 'json' },
  'GET /api/v1/agents/{id}/chat/history': { summary: 'Messages of the agent (session_id, limit)', status: 200, returns: 'json' },
  'POST /api/v1/agents/{id}/memories': { summary: 'Add a memory', body: 'createMemory', status: 201, returns: 'json' },
  'GET /api/v1/agents/{id}/memories': { summary: 'List memories (limit, offset, user_id)', status: 200, returns: 'json' },
  'GET /api/v1/agents/{id}/memories/search': { summary: 'Search memories (q, limit, user_id)', status: 200, returns: 'json' },
  'GET /api/v1/memories/{id}': { summary: 'Get a memory', status: 200, returns: 'json' },
  'PUT /api/v1/memories/{id}': { summary: 'Update a memory', body: 'updateMemory', status: 200, returns: 'json' },
  'DELETE /api/v1/memories/{id}': { summary: 'Delete a memory (200 with {id, message}, as AgentMem answers)', status: 200, returns: 'json' },
  'POST /api/v1/memories': { summary: 'Add a memory to an agent (AgentMem shape: {content, agent_id, …})', body: 'createOrgMemory', status: 201, returns: 'json' },
  'GET /api/v1/memories': { summary: 'List the org\'s memories (page, limit, agent_id, user_id, memory_type, sort_by, order)', status: 200, returns: 'json' },
  'POST /api/v1/memories/search': { summary: 'Search memories with the chat\'s retrieval', body: 'searchMemories', status: 200, returns: 'json' },
  'POST /api/v1/api-keys': { summary: 'Make an org API key (admin JWT); the key is in this answer only', body: 'createApiKey', status: 201, returns: 'json' },
  'GET /api/v1/api-keys': { summary: 'The org\'s API keys, never their secrets (admin JWT)', status: 200, returns: 'json' },
  'DELETE /api/v1/api-keys/{id}': { summary: 'Revoke an API key (admin JWT)', status: 200, returns: 'json' },
  'GET /api/v1/streams/{id}': { summary: 'Resume a stream: replay after Last-Event-ID, then follow live (bearer or ?resume_token=)', status: 200, returns: 'sse', public: true },
  'DELETE /api/v1/streams/{id}': { summary: 'Cancel a running stream', status: 204, returns: 'empty' },
  'GET /healthz': { summary: 'Liveness', status: 200, returns: 'json', public: true },
  'GET /readyz': { summary: 'Readiness (store reachable, not draining)', status: 200, returns: 'json', public: true },
  'GET /health': { summary: 'Health, AgentMem\'s name: the readiness checks, in its shape', status: 200, returns: 'json', public: true },
  'GET /health/live': { summary: 'Liveness, AgentMem\'s name', status: 200, returns: 'json', public: true },
  'GET /health/ready': { summary: 'Readiness, AgentMem\'s name', status: 200, returns: 'json', public: true },
  'GET /metrics': { summary: 'Prometheus metrics (METRICS_TOKEN or loopback)', status: 200, returns: 'text', public: true },
  'GET /': { summary: 'The chat page (dev mode, or UI=on)', status: 200, returns: 'html', public: true },
  'GET /openapi.json': { summary: 'This document', status: 200, returns: 'json', public: true }
}

const STREAM_CHUNK = {
  type: 'object',
  description: 'One SSE event: `data:` carries this JSON. The four keys are always present; extras may follow.',
  required: ['chunk_type', 'content', 'tool_call', 'memories_count'],
  properties: {
    chunk_type: { enum: ['start', 'content', 'reasoning', 'tool_call', 'memory_update', 'done', 'error'], description: 'reasoning only with include_reasoning: true' },
    content: { type: ['string', 'null'] },
    tool_call: {
      oneOf: [{ type: 'null' }, {
        type: 'object',
        required: ['tool_name', 'arguments'],
        properties: {
          id: { type: 'string' },
          tool_name: { type: 'string' },
          arguments: {},
          status: { enum: ['running', 'completed', 'failed'] },
          result: { type: ['string', 'null'] },
          error: { type: 'string' }
        }
      }]
    },
    memories_count: { type: ['integer', 'null'] },
    stream_id: { type: 'string' },
    session_id: { type: 'string' },
    resume_token: { type: 'string' },
    code: { type: 'string', enum: Object.keys(STREAM_ENDINGS), description: 'On error chunks: why the stream ended' }
  }
}

const ERROR = {
  type: 'object',
  required: ['code', 'message', 'details', 'timestamp'],
  properties: { code: { type: 'string' }, message: { type: 'string' }, details: {}, timestamp: { type: 'string', format: 'date-time' } }
}

/** Every status an error can have, from the one table of codes. */
const ERROR_STATUSES = [...new Set(Object.values(HTTP_STATUS))].sort().map(String)

function responseFor (op: Operation): Record<string, unknown> {
  if (op.returns === 'empty') return { description: 'Done' }
  if (op.returns === 'text' || op.returns === 'html') {
    return { description: 'OK', content: { [op.returns === 'text' ? 'text/plain' : 'text/html']: { schema: { type: 'string' } } } }
  }
  if (op.returns === 'sse') return { description: 'An event stream of StreamChunk events', content: { 'text/event-stream': { schema: { $ref: '#/components/schemas/StreamChunk' } } } }
  return { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } }
}

/** OpenAPI 3.1 for the routes given, from the same ajv schemas the server validates with. */
export function buildOpenApi (routes: Array<{ method: string, pattern: string }>, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const { method, pattern } of routes) {
    const path = pattern.replace(/:(\w+)/g, '{$1}')
    const op = OPERATIONS[`${method} ${path}`]
    if (op === undefined) throw new Error(`No OpenAPI entry for ${method} ${path}`)
    const errors = Object.fromEntries(ERROR_STATUSES.map((s) => [s, { $ref: '#/components/responses/Error' }]))
    paths[path] ??= {}
    ;(paths[path] as Record<string, unknown>)[method.toLowerCase()] = {
      summary: op.summary,
      ...(op.public === true ? { security: [] } : {}),
      ...(path.includes('{id}') ? { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }] } : {}),
      ...(op.body === undefined ? {} : { requestBody: { required: true, content: { 'application/json': { schema: { $ref: `#/components/schemas/${op.body}` } } } } }),
      responses: { [String(op.status)]: responseFor(op), ...errors }
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'agentmem-stream', version, description: 'Streams chat replies of memory-augmented agents over Server-Sent Events.' },
    security: [{ bearer: [] }, { apiKey: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT or agm_ API key' }, apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
      schemas: { ...schemas, StreamChunk: STREAM_CHUNK, Error: ERROR },
      responses: { Error: { description: 'An error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } }
    }
  }
}
