import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { StreamOutcome } from '../stream/outcomes.js'

/**
 * Prometheus metrics on a private registry (an embedding app's default registry stays its own).
 * Hot-path counts (events, bytes) are added once per stream at its end, not once per token.
 */
export class Metrics {
  readonly registry = new Registry()
  readonly activeStreams = new Gauge({ name: 'agentmem_active_streams', help: 'Streams running now, per tenant', labelNames: ['tenant'], registers: [this.registry] })
  readonly streamsStarted = new Counter({ name: 'agentmem_streams_started_total', help: 'Streams that sent their 200', registers: [this.registry] })
  readonly streamsEnded = new Counter({ name: 'agentmem_streams_ended_total', help: 'Streams ended, by outcome', labelNames: ['outcome'], registers: [this.registry] })
  readonly limitRejections = new Counter({ name: 'agentmem_limit_rejections_total', help: 'Streams refused with 429, by limit', labelNames: ['scope'], registers: [this.registry] })
  readonly timeToFirstToken = new Histogram({
    name: 'agentmem_time_to_first_token_seconds', help: 'From request accepted to first model output', registers: [this.registry],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30]
  })

  readonly timeToFirstReasoning = new Histogram({
    name: 'agentmem_time_to_first_reasoning_seconds', help: 'From request accepted to a reasoning model\'s first thought', registers: [this.registry],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120]
  })

  readonly slowReadersCut = new Counter({ name: 'agentmem_slow_readers_cut_total', help: 'Readers cut for leaving the socket buffer full past STREAM_DRAIN_TIMEOUT_MS', registers: [this.registry] })
  /** What the live and the ended streams' replay logs hold, read at scrape time. */
  readonly #replayBytes: () => { live: number, ended: number }
  readonly replayBytesGauge = new Gauge({
    name: 'agentmem_replay_bytes',
    help: 'Bytes the replay logs hold (characters plus bookkeeping), live streams against STREAM_LIVE_REPLAY_MAX_BYTES, ended against STREAM_RESUME_MAX_BYTES',
    labelNames: ['state'],
    registers: [this.registry],
    collect: () => {
      const { live, ended } = this.#replayBytes()
      this.replayBytesGauge.set({ state: 'live' }, live)
      this.replayBytesGauge.set({ state: 'ended' }, ended)
    }
  })

  readonly memoryExtractions = new Counter({ name: 'agentmem_memory_extractions_total', help: 'Memory extractions, by outcome', labelNames: ['outcome'], registers: [this.registry] })

  readonly streamDuration = new Histogram({
    name: 'agentmem_stream_duration_seconds', help: 'Stream lifetime', registers: [this.registry],
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600]
  })

  readonly eventsSent = new Counter({ name: 'agentmem_events_sent_total', help: 'SSE events produced', registers: [this.registry] })
  readonly bytesSent = new Counter({ name: 'agentmem_event_bytes_total', help: 'Bytes of SSE events produced (before compression)', registers: [this.registry] })
  readonly keepAlives = new Counter({ name: 'agentmem_keepalives_total', help: 'Keep-alive comments sent', registers: [this.registry] })
  readonly upstreamErrors = new Counter({ name: 'agentmem_upstream_errors_total', help: 'LLM upstream failures (before or during a stream)', registers: [this.registry] })
  readonly toolCalls = new Counter({ name: 'agentmem_tool_calls_total', help: 'Tool calls, by outcome', labelNames: ['outcome'], registers: [this.registry] })
  readonly memoriesWritten = new Counter({ name: 'agentmem_memories_written_total', help: 'Memories added or updated by turns, by op', labelNames: ['op'], registers: [this.registry] })

  constructor (replayBytes: () => { live: number, ended: number }) {
    this.#replayBytes = replayBytes
  }

  streamEnded (tenant: string, outcome: StreamOutcome, seconds: number): void {
    this.activeStreams.dec({ tenant })
    this.streamsEnded.inc({ outcome })
    this.streamDuration.observe(seconds)
    if (outcome === 'upstream_error') this.upstreamErrors.inc()
  }
}
