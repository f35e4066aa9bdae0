/** The most bytes of an event-stream body the SDK is handed at once. */
export const SSE_SLICE_BYTES = 2048

/**
 * `fetch` for the openai SDK, whose event-stream bodies iterate in slices of at most
 * `SSE_SLICE_BYTES` (views, nothing copied). The SDK's SSE reader (openai 6, `iterSSEChunks`)
 * copies what is left of its buffer after every event it takes out, so one 64 KiB read from a
 * fast upstream cost some 500 copies of up to 64 KiB: quadratic in the read, and the busier the
 * server, the larger its reads. In slices it is linear (bench scenario 2). The SDK reads a body
 * by async iteration, so only that is replaced, on this body alone: a read of one small chunk
 * (a paced upstream) costs one generator step, and every other response is untouched.
 */
export async function slicedFetch (input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const res = await fetch(input, init)
  const body = res.body
  if (body === null || res.headers.get('content-type')?.startsWith('text/event-stream') !== true) return res
  Object.defineProperty(body, Symbol.asyncIterator, { value: () => slices(body.values()) })
  return res
}

/** The chunks of a body, cut to at most `SSE_SLICE_BYTES`; returning early ends the body's iteration, which cancels it, as iterating it directly would. */
export async function * slices (chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    if (chunk.length <= SSE_SLICE_BYTES) yield chunk
    else for (let at = 0; at < chunk.length; at += SSE_SLICE_BYTES) yield chunk.subarray(at, at + SSE_SLICE_BYTES)
  }
}
