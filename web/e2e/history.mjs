// A long channel in a real browser (Debian's Chromium, driven by playwright-core) against a live
// cell: N messages are sent over a socket, then the web client opens the channel at its newest
// page and is scrolled up, a step each frame, until the first message shows. What it checks:
// every message shows, once (none skipped, none twice, while older pages are prepended), in
// order down the screen in every frame, and the view keeps its place when a page comes in
// (the message at the top before the page is where it was after), and "latest" brings the
// view back to the newest. What it prints (one JSON line): frame times while scrolling, the
// most message rows in the document at once, and the page's JS heap.
//
//   node e2e/history.mjs http://127.0.0.1:8080 10000        # the benchmark (docs/benchmarks.md)
//   node e2e/history.mjs http://127.0.0.1:8080 300          # the suite's check (web_e2e.rs)
//
// The cell must run with raised limits (`cell --load-test`): N sends go as fast as acks return.
// Exit code 0 when all holds; the failure is printed.
import { chromium } from 'playwright-core'
import assert from 'node:assert/strict'

const [base = 'http://127.0.0.1:8080', count = '300'] = process.argv.slice(2)
const N = Number(count)
const run = Date.now().toString(36)
const STEP = 120 // pixels scrolled per frame: a brisk flick of the wheel, held
const api = (path, body, token) =>
  fetch(`${base}/api/v1${path}`, {
    method: body ? 'POST' : 'GET',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  }).then(async (r) => {
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`)
    return r.json()
  })

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--enable-precise-memory-info'],
})

/** Sends `n` messages to `channel` over one socket of the page, 64 awaiting their ack at once. */
async function seed(page, token, channel, n) {
  await page.goto(`${base}/api/v1/openapi.json`) // any page of the origin
  return page.evaluate(async ({ token, channel, n }) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws`, ['chat.v1', `bearer.${token}`])
    await new Promise((ok, fail) => ((ws.onopen = ok), (ws.onerror = fail)))
    let next = 1
    let acked = 0
    return new Promise((done, fail) => {
      const send = (i) => {
        const content = `message ${i}` + (i % 7 === 0 ? '\n' + 'a longer line of text that wraps '.repeat(4) : '')
        ws.send(JSON.stringify({ type: 'message.send', id: `h-${i}`, payload: { channel_id: channel, content } }))
      }
      ws.onmessage = (event) => {
        const frame = JSON.parse(event.data)
        if (frame.type === 'message.ack') {
          acked += 1
          if (acked === n) return done(acked)
          if (next <= n) send(next++)
        } else if (frame.type === 'error' && frame.id?.startsWith('h-') && frame.payload?.retryable) {
          setTimeout(() => send(Number(frame.id.slice(2))), frame.payload.retry_after_ms ?? 100)
        } else if (frame.type === 'error') fail(new Error(event.data))
      }
      ws.onclose = (event) => fail(new Error(`socket closed ${event.code}`))
      while (next <= Math.min(n, 64)) send(next++)
    })
  }, { token, channel, n })
}

try {
  const name = `long${run}`
  const password = 'correct horse battery'
  const owner = await api('/auth/register', { username: name, email: `${name}@example.com`, password })
  const channel = await api('/channels', { type: 'group', name: `long ${run}` }, owner.access_token)
  const seeder = await browser.newPage()
  const started = Date.now()
  await seed(seeder, owner.access_token, channel.id, N)
  const seeded = (Date.now() - started) / 1000
  await seeder.close()

  // The reader signs in with a session of their own (a refresh token is used once).
  const reader = await api('/auth/login', { username: name, password })
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } })
  await context.addInitScript((token) => localStorage.setItem('chat.refresh_token', token), reader.refresh_token)
  const page = await context.newPage()
  page.setDefaultTimeout(30_000)
  await page.goto(base)
  await page.getByText(`message ${N}`, { exact: true }).waitFor()
  // The channel opens at its newest message: it shows at the bottom of the list.
  await page.waitForFunction((N) => {
    const list = document.querySelector('[data-testid=messages]')
    const row = list?.querySelector(`[data-seq="${N}"]`)
    if (!row) return false
    const [box, r] = [list.getBoundingClientRect(), row.getBoundingClientRect()]
    return r.top >= box.top && r.bottom <= box.bottom && list.scrollHeight - list.scrollTop - list.clientHeight < 2
  }, N)

  const result = await page.evaluate(async ({ N, STEP }) => {
    const list = document.querySelector('[data-testid=messages]')
    const seqOf = (row) => Number(row.dataset.seq)
    const rows = () => [...list.querySelectorAll('[data-testid=message][data-seq]')]
    const seen = new Map() // seq → content, as each shows
    const frames = []
    let mostRows = 0
    let jumps = 0 // a page came in and the row at the top moved
    const moves = []
    const twice = []
    let misordered = 0 // frames whose rows were not in seq order down the screen
    let last = performance.now()
    const deadline = last + 600_000
    return new Promise((done) => {
      const frame = (now) => {
        frames.push(now - last)
        last = now
        const shown = rows()
        mostRows = Math.max(mostRows, shown.length)
        const box = list.getBoundingClientRect()
        // On screen, top to bottom, the seqs ascend: rows are where their order says.
        const onScreen = shown
          .map((row) => ({ seq: seqOf(row), top: row.getBoundingClientRect().top }))
          .sort((a, b) => a.top - b.top)
        if (onScreen.some((row, i) => i > 0 && row.seq <= onScreen[i - 1].seq)) misordered += 1
        for (const row of shown) {
          const r = row.getBoundingClientRect()
          if (r.bottom > box.top && r.top < box.bottom) {
            const text = row.querySelector('[data-testid=content]')?.textContent ?? ''
            const seq = seqOf(row)
            if (seen.has(seq) && seen.get(seq) !== text) twice.push(seq) // one seq, two contents
            seen.set(seq, text)
          }
        }
        const top = shown.find((row) => row.getBoundingClientRect().bottom > box.top)
        const anchor = top && { seq: seqOf(top), y: top.getBoundingClientRect().top }
        if (seen.has(1) || now > deadline) {
          return done({ frames, mostRows, jumps, moves, twice, misordered, seen: [...seen.entries()].sort((a, b) => a[0] - b[0]) })
        }
        list.scrollTop -= STEP
        requestAnimationFrame((next) => {
          // After the scroll, the anchor row moved by STEP at most (a page prepended moves nothing).
          const again = anchor && list.querySelector(`[data-seq="${anchor.seq}"]`)
          if (again) {
            const moved = again.getBoundingClientRect().top - anchor.y
            if (moved > STEP + 2 || moved < -2) {
              jumps += 1
              moves.push([anchor.seq, Math.round(moved), frames.length])
            }
          }
          frame(next)
        })
      }
      requestAnimationFrame((now) => {
        last = now
        frame(now)
      })
    })
  }, { N, STEP })

  // Far from the newest message, one click brings the view back to it.
  await page.getByTestId('jump').click()
  await page.waitForFunction((N) => {
    const list = document.querySelector('[data-testid=messages]')
    const row = list?.querySelector(`[data-seq="${N}"]`)
    if (!row) return false
    const [box, r] = [list.getBoundingClientRect(), row.getBoundingClientRect()]
    return r.top >= box.top && r.bottom <= box.bottom + 1
  }, N)

  const seqs = result.seen.map(([seq]) => seq)
  const contents = result.seen.map(([, text]) => text.split('\n')[0])
  const messageSeqs = seqs.filter((_, i) => /^message \d+/.test(contents[i]))
  const shown = new Set(contents.map((c) => Number(c.replace(/^message (\d+).*$/, '$1'))))
  const missing = Array.from({ length: N }, (_, i) => i + 1).filter((i) => !shown.has(i))
  assert.equal(messageSeqs.length, N, `every one of ${N} messages showed (${messageSeqs.length} did; not ${missing.slice(0, 20)}…)`)
  assert.deepEqual(
    contents.map((c) => Number(c.replace(/^message (\d+).*$/, '$1'))),
    Array.from({ length: N }, (_, i) => i + 1),
    'in seq order, each once',
  )
  assert.deepEqual(result.twice, [], 'each seq showed one content')
  assert.equal(result.misordered, 0, 'rows in seq order down the screen, every frame')
  assert.equal(result.jumps, 0, `the view kept its place as older pages came in (moved: ${JSON.stringify(result.moves)})`)
  const frames = result.frames.slice(1).sort((a, b) => a - b)
  const at = (q) => Math.round(frames[Math.min(frames.length - 1, Math.floor(q * frames.length))] * 10) / 10
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? null)
  console.log(JSON.stringify({
    messages: N,
    seeded_per_s: Math.round(N / seeded),
    frames: frames.length,
    frame_ms: { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1) },
    frames_over_50ms: frames.filter((f) => f > 50).length,
    scroll_s: Math.round(frames.reduce((a, b) => a + b, 0) / 100) / 10,
    most_rows_in_dom: result.mostRows,
    js_heap_mb: heap && Math.round(heap / 1e5) / 10,
  }))
  console.log(`web history: ok (${N} messages scrolled through in order, once, the place kept)`)
} catch (error) {
  console.error('web history failed:', error)
  process.exitCode = 1
} finally {
  await browser.close()
}
