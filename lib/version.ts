import { readFileSync } from 'node:fs'

/** package.json sits beside lib/ (sources) or beside dist/ (compiled): the same regex finds it from both. */
export const PACKAGE_VERSION: string =
  (JSON.parse(readFileSync(new URL(import.meta.url.replace(/(\/dist)?\/lib\/version\.[jt]s$/, '/package.json')), 'utf8')) as { version: string }).version
