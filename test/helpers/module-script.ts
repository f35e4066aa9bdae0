import { spawn } from 'node:child_process'
import { once } from 'node:events'

/**
 * Runs `script` as an ES module in a child Node (with this test's TypeScript loader, and `flags`),
 * its stderr shown; resolves with its exit code and standard output. A child still running after
 * `timeoutMs` is killed, so a hang fails the test instead of holding it.
 */
export async function runModuleScript (script: string, flags: string[] = [], timeoutMs = 60_000): Promise<{ code: number | null, stdout: string }> {
  const child = spawn(process.execPath, [...process.execArgv, ...flags, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
  const timer = setTimeout(() => child.kill(), timeoutMs)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, stdout }
}
