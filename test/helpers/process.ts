import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

export interface ServerProcess {
  url: string
  proc: ChildProcess
  /** Everything the process printed on stdout so far. */
  output: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * `agentmem-stream serve` in a process of its own, as `npm start` runs it, configured by `env`.
 * It runs lib/cli.ts with the loaders tap gave this process, so its coverage counts too.
 */
export async function startServerProcess (t: Test, env: Record<string, string>): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [...process.execArgv, 'lib/cli.ts', 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  t.teardown(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGKILL')
    await exited
  })
  let out = ''
  proc.stdout?.setEncoding('utf8')
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout?.on('data', (text: string) => {
      out += text
      // Both start-up lines are in: the address, and what it runs on.
      const match = /listening on (http:\/\/\S+)\n.*limits:/.exec(out)
      if (match !== null) resolve(match[1] as string)
    })
    void exited.then(({ code }) => reject(new Error(`server exited with ${String(code)}: ${out}`)))
  })
  return { url, proc, output: () => out, exited }
}
