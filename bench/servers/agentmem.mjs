// agentmem-stream as shipped (compiled dist/), configured from the environment like `npm start`.
import { createServer, optionsFromEnv } from '../../dist/lib/index.js'
import { serve } from './contract.mjs'

serve(async (port) => {
  const app = await createServer({ ...optionsFromEnv(process.env), port })
  const url = await app.listen()
  return Number(new URL(url).port)
})
