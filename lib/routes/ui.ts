import { readFileSync } from 'node:fs'
import type { Router } from '../http/router.js'

/** The page ships as plain HTML beside the sources (no build step); compiled code finds it from dist/ too. */
const PAGE_URL = new URL(import.meta.url.replace(/(\/dist)?\/lib\/routes\/ui\.[jt]s$/, '/lib/ui/page.html'))

/**
 * GET /: a small chat page. In local dev mode the page carries the dev token (loopback only,
 * like dev mode itself); otherwise the user pastes a token.
 */
export function uiRoutes (router: Router, devToken: string | null): void {
  const html = readFileSync(PAGE_URL, 'utf8')
  const page = devToken === null ? html : html.replace('<meta charset="utf-8">', `<meta charset="utf-8">\n<meta name="dev-token" content="${devToken}">`)
  router.on('GET', '/', async ({ res }) => {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Security-Policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
      'X-Content-Type-Options': 'nosniff'
    })
    res.end(page)
  })
}
