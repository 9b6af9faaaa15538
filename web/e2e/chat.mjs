// The web client in a real browser (Debian's Chromium, driven by playwright-core) against a
// live cell: two people register, open a dm and chat both ways; one goes offline while the
// other sends 20 messages, comes back and shows all 20, in order, once; they react, edit and see
// each other typing; axe-core finds no serious accessibility fault. Screenshots of the main
// views go to the directory given. Exit code 0 when all holds; the failure is printed.
//
//   node e2e/chat.mjs http://127.0.0.1:8080 ../docs/screenshots
import { chromium } from 'playwright-core'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

const [base = 'http://127.0.0.1:8080', shots] = process.argv.slice(2)
const run = Date.now().toString(36)
const TIMEOUT = 20_000

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
})

async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } })
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT)
  await page.goto(base)
  await page.getByRole('button', { name: 'New here? Create an account' }).click()
  await page.getByLabel('Username').fill(name)
  await page.getByLabel('Email').fill(`${name}@example.com`)
  await page.getByLabel('Password').fill('correct horse battery')
  if (shots && name.startsWith('ada')) await page.screenshot({ path: `${shots}/register.png` })
  await page.getByRole('button', { name: 'Create account' }).click()
  await page.getByRole('navigation', { name: 'Channels' }).waitFor()
  return { name, context, page }
}

async function send(page, text) {
  await page.getByTestId('composer').fill(text)
  await page.getByTestId('composer').press('Enter')
}

/** The contents shown, once every shown message is stored (none pending). */
async function contents(page) {
  return page.getByTestId('content').allTextContents()
}

async function shows(page, texts) {
  await page.waitForFunction(
    (wanted) => {
      const shown = [...document.querySelectorAll('[data-testid=message][data-state=stored] [data-testid=content]')].map((e) => e.textContent)
      return wanted.every((w) => shown.includes(w))
    },
    texts,
    { timeout: TIMEOUT },
  )
}

try {
  if (shots) mkdirSync(shots, { recursive: true })
  const ada = await person(`ada${run}`)
  const bob = await person(`bob${run}`)

  await ada.page.getByTestId('user-search').fill(bob.name)
  await ada.page.getByRole('button', { name: new RegExp(`@${bob.name}`) }).click()
  await send(ada.page, 'hello bob')
  await shows(ada.page, ['hello bob'])

  await bob.page.getByTestId('channel').first().click()
  await shows(bob.page, ['hello bob'])
  await send(bob.page, 'hi ada')
  await shows(ada.page, ['hi ada'])
  await shows(bob.page, ['hi ada'])
  // Bob has read ada's message: she sees it under her newest one.
  await ada.page.getByTestId('message').filter({ hasText: 'hello bob' }).getByTestId('seen').filter({ hasText: 'Seen' }).waitFor()

  // Bob drops off; ada sends 20; bob comes back and has each of them once, in order.
  await bob.context.setOffline(true)
  await bob.page.getByTestId('reconnecting').waitFor()
  const burst = Array.from({ length: 20 }, (_, i) => `burst ${i + 1}`)
  for (const text of burst) await send(ada.page, text)
  await shows(ada.page, burst)
  await bob.context.setOffline(false)
  await shows(bob.page, burst)
  const seen = await contents(bob.page)
  assert.deepEqual(seen, ['hello bob', 'hi ada', ...burst], 'every message once, in order')
  assert.deepEqual(await contents(ada.page), ['hello bob', 'hi ada', ...burst])
  await ada.page.getByTestId('message').filter({ hasText: 'burst 20' }).getByTestId('seen').waitFor()

  // The keyboard alone: from the message list, Up to the newest message, Up again to the one
  // before it (burst 19), Tab to its first action.
  await ada.page.getByTestId('messages').focus()
  await ada.page.keyboard.press('ArrowUp')
  await ada.page.keyboard.press('ArrowUp')
  await ada.page.keyboard.press('Tab')
  await ada.page.keyboard.press('Enter')
  await bob.page.getByTestId('message').filter({ hasText: 'burst 19' }).getByTestId('reaction').filter({ hasText: '👍 1' }).waitFor()

  // Reactions, edits and typing, both ways.
  const bobsMessage = ada.page.getByTestId('message').filter({ hasText: 'hi ada' })
  await bobsMessage.getByTestId('content').hover()
  await bobsMessage.getByRole('button', { name: 'React 👍' }).click()
  for (const who of [bob, ada]) {
    await who.page.getByTestId('message').filter({ hasText: 'hi ada' }).getByTestId('reaction').filter({ hasText: '👍 1' }).waitFor()
  }
  const own = bob.page.getByTestId('message').filter({ hasText: 'hi ada' })
  await own.getByTestId('content').hover()
  await own.getByRole('button', { name: 'Edit' }).click()
  await bob.page.getByTestId('edit-box').fill('hi ada, edited')
  await bob.page.getByTestId('edit-box').press('Enter')
  await ada.page.getByTestId('content').filter({ hasText: 'hi ada, edited(edited)' }).waitFor()
  await bob.page.getByTestId('composer').pressSequentially('typing')
  await ada.page.getByTestId('typing').filter({ hasText: `${bob.name} is typing` }).waitFor()

  // An image: uploaded with progress, shown to the other from a signed link.
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==',
    'base64',
  )
  await ada.page.getByTestId('file-input').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: png })
  await ada.page.getByTestId('pick').getByLabel('uploaded').waitFor()
  await ada.page.getByTestId('composer').fill('a picture')
  await ada.page.getByTestId('composer').press('Enter')
  const image = bob.page.getByTestId('image').filter({ has: bob.page.locator('[alt="dot.png"]') }).or(bob.page.locator('img[alt="dot.png"]'))
  await image.first().waitFor()
  await bob.page.waitForFunction(() => [...document.images].some((i) => i.alt === 'dot.png' && i.complete && i.naturalWidth === 2))

  // A public channel: ada makes it, bob finds it, joins and writes in it.
  const general = `general ${run}`
  await ada.page.getByRole('button', { name: 'New channel' }).click()
  await ada.page.getByTestId('new-channel-name').fill(general)
  await ada.page.getByRole('button', { name: 'Create' }).click()
  await ada.page.getByTestId('channel-title').filter({ hasText: general }).waitFor()
  await bob.page.getByRole('button', { name: 'Browse' }).click()
  await bob.page.getByPlaceholder('Search public channels…').fill(general)
  await bob.page.getByRole('listitem').filter({ hasText: general }).getByRole('button', { name: 'Join' }).click()
  await bob.page.getByTestId('channel-title').filter({ hasText: general }).waitFor()
  await send(bob.page, 'hello everyone')
  await shows(ada.page, ['hello everyone'])

  // A mention completed from the channel's members, and a reply quoting the message it answers.
  await ada.page.getByTestId('composer').pressSequentially(`@${bob.name.slice(0, 4)}`, { delay: 100 })
  await ada.page.getByTestId('suggestions').getByRole('option', { name: new RegExp(`@${bob.name}`) }).waitFor()
  await ada.page.getByTestId('composer').press('Enter')
  await ada.page.getByTestId('composer').pressSequentially('welcome')
  await ada.page.getByTestId('composer').press('Enter')
  await shows(bob.page, [`@${bob.name} welcome`])
  const welcome = bob.page.getByTestId('message').filter({ hasText: `@${bob.name} welcome` })
  await welcome.getByTestId('content').hover()
  await welcome.getByRole('button', { name: 'Reply' }).click()
  await bob.page.getByTestId('replying').waitFor()
  await send(bob.page, 'thank you')
  await ada.page.getByTestId('message').filter({ hasText: 'thank you' }).getByTestId('quote').filter({ hasText: 'welcome' }).waitFor()

  // The sidebar previews each channel's newest message, the most recently active first.
  await ada.page.getByTestId('channel').first().getByTestId('preview').filter({ hasText: `${bob.name}: thank you` }).waitFor()
  await ada.page.getByTestId('channel').nth(1).getByTestId('preview').filter({ hasText: 'You: a picture' }).waitFor()
  await bob.page.reload() // and from the server's list, as it is after a reload
  await bob.page.getByTestId('channel').first().getByTestId('preview').filter({ hasText: 'You: thank you' }).waitFor()
  await bob.page.getByTestId('channel').nth(1).getByTestId('preview').filter({ hasText: 'a picture' }).waitFor()

  // Bob mutes the dm for an hour: the sidebar says so, and still does after a reload.
  await bob.page.getByTestId('channel').nth(1).click()
  await bob.page.getByTestId('notifications').click()
  await bob.page.getByRole('button', { name: 'Mute for an hour' }).click()
  await bob.page.getByTestId('channel').nth(1).getByRole('img', { name: 'muted' }).waitFor()
  await bob.page.reload()
  await bob.page.getByTestId('channel').filter({ hasText: ada.name }).getByRole('img', { name: 'muted' }).waitFor()
  await bob.page.getByTestId('channel').first().click()

  // Accessibility in light and dark mode: no serious or critical axe violation on either page.
  for (const who of [ada, bob]) await who.page.addScriptTag({ content: axeSource })
  for (const colorScheme of ['light', 'dark']) {
    for (const who of [ada, bob]) {
      await who.page.emulateMedia({ colorScheme })
      const result = await who.page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }))
      const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      assert.deepEqual(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.length}: ${v.nodes.slice(0, 4).map((n) => n.html.slice(0, 120) + " " + (n.any[0]?.message ?? "")).join(" | ")})`), [], `accessibility, ${colorScheme}`)
    }
  }
  if (shots) await ada.page.screenshot({ path: `${shots}/chat-dark.png` })
  await ada.page.emulateMedia({ colorScheme: 'light' })
  await bob.page.emulateMedia({ colorScheme: 'light' })

  if (shots) {
    await ada.page.screenshot({ path: `${shots}/chat.png` })
    await bob.page.setViewportSize({ width: 390, height: 760 })
    await bob.page.screenshot({ path: `${shots}/chat-narrow.png` })
  }
  // A delete (after the screenshots): the message keeps its place, its content gone, on both sides.
  const welcomed = ada.page.getByTestId('message').filter({ hasText: `@${bob.name} welcome` }).first() // not the reply quoting it
  await welcomed.getByTestId('content').hover()
  await welcomed.getByRole('button', { name: 'Delete' }).click()
  for (const who of [ada, bob]) await who.page.getByTestId('content').filter({ hasText: 'This message was deleted.' }).waitFor()

  console.log(`web e2e: ok (${seen.length} messages in order on both sides; reactions, edits, a delete, typing; an image; a public channel made, found and joined; a mention completed; a reply quoted; previews in the sidebar, live and reloaded; read receipts; a dm muted; a reaction by keyboard alone; no serious axe violations, light or dark)`)
} catch (error) {
  console.error('web e2e failed:', error)
  for (const [i, context] of browser.contexts().entries()) {
    const page = context.pages()[0]
    if (page) {
      console.error(`page ${i}: ${(await page.locator('body').innerText()).slice(0, 2000)}`)
      if (shots) await page.screenshot({ path: `${shots}/failure-${i}.png` })
    }
  }
  process.exitCode = 1
} finally {
  await browser.close()
}
