// A benchmarked server (SERVER_SCRIPT) with V8's sampling heap profiler on call: `alloc-start`
// starts it counting every sampled allocation, garbage included (what the collector has to
// clear); `alloc-stop` writes the profile to `path`. A wrapper, so an older checkout's server works too.
import { Session } from 'node:inspector/promises'
import { writeFileSync } from 'node:fs'

const session = new Session()
session.connect()
process.on('message', async (msg) => {
  if (msg.type === 'alloc-start') {
    await session.post('HeapProfiler.enable')
    await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    process.send?.({ type: 'alloc-started' })
  }
  if (msg.type === 'alloc-stop') {
    const { profile } = await session.post('HeapProfiler.stopSampling')
    writeFileSync(msg.path, JSON.stringify(profile))
    process.send?.({ type: 'alloc-stopped' })
  }
})
await import(process.env.SERVER_SCRIPT)
