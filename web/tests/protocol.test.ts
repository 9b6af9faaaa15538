import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { backoffDelay } from '../src/protocol/backoff'
import { ChatConnection, SendRefused, type SocketLike } from '../src/protocol/client'
import { SeqTracker } from '../src/protocol/seqs'

/** A socket the test plays the server of: what the client wrote, and frames to answer with. */
class FakeSocket implements SocketLike {
  readyState = 0
  written: any[] = []
  onopen: SocketLike['onopen'] = null
  onmessage: SocketLike['onmessage'] = null
  onclose: SocketLike['onclose'] = null
  onerror: SocketLike['onerror'] = null
  constructor(readonly url: string, readonly protocols: string[]) {}
  send(data: string) {
    this.written.push(JSON.parse(data))
  }
  close(code = 1000) {
    this.drop(code)
  }
  open() {
    this.readyState = 1
    this.onopen?.({})
  }
  frame(frame: unknown) {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }
  drop(code = 1006) {
    this.readyState = 3
    this.onclose?.({ code, reason: '' })
  }
}

const CHANNEL = '7d8f0000-0000-4000-8000-000000000001'

function message(seq: number, clientId = `c-${seq}`) {
  return {
    type: 'message.new',
    payload: { message_id: String(1000 + seq), client_id: clientId, channel_id: CHANNEL, seq, content: `m${seq}` },
  }
}

function setup(options: Partial<ConstructorParameters<typeof ChatConnection>[0]> = {}) {
  const sockets: FakeSocket[] = []
  const connection = new ChatConnection({
    url: 'ws://cell.test/ws',
    token: () => 'tok-1',
    createSocket: (url, protocols) => {
      const socket = new FakeSocket(url, protocols)
      sockets.push(socket)
      return socket
    },
    random: () => 0.5,
    ...options,
  })
  const seen: number[] = []
  connection.on('message', (m) => seen.push(Number(m.seq)))
  const statuses: string[] = []
  connection.on('status', (s) => statuses.push(s))
  return { connection, sockets, seen, statuses, last: () => sockets[sockets.length - 1] }
}


beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }))
afterEach(() => vi.useRealTimers())

async function advance(ms: number) {
  await vi.advanceTimersByTimeAsync(ms)
}

describe('the handshake', () => {
  it('carries the token as a subprotocol, never in the URL', async () => {
    const { connection, last } = setup()
    connection.start()
    await advance(0)
    expect(last().protocols).toEqual(['chat.v1', 'bearer.tok-1'])
    expect(last().url).toBe('ws://cell.test/ws')
    expect(last().url).not.toContain('tok-1')
  })
})

describe('sends', () => {
  it('go one at a time per channel: each resolves on its ack, a refusal not to retry rejects', async () => {
    const { connection, last } = setup()
    connection.start()
    await advance(0)
    last().open()
    const first = connection.send({ channel_id: CHANNEL, content: '' }, 'c-1')
    const second = connection.send({ channel_id: CHANNEL, content: 'hi' }, 'c-2')
    const elsewhere = connection.send({ channel_id: 'other', content: 'there' }, 'o-1')
    expect(last().written.map((f) => f.id)).toEqual(['c-1', 'o-1'])
    last().frame({ type: 'error', id: 'c-1', payload: { code: 'invalid_payload', retryable: false, message: 'content is empty' } })
    expect(last().written.map((f) => f.id)).toEqual(['c-1', 'o-1', 'c-2'])
    last().frame({ type: 'message.ack', id: 'c-2', payload: { status: 'stored', message_id: '77', channel_id: CHANNEL } })
    await expect(first.acked).rejects.toBeInstanceOf(SendRefused)
    await expect(second.acked).resolves.toEqual({ status: 'stored', message_id: '77', channel_id: CHANNEL })
    expect(connection.pendingIds()).toEqual(['o-1'])
    void elsewhere
  })

  it('made while disconnected, or unacked when the socket drops, go out again with the same ids', async () => {
    const { connection, last, sockets } = setup()
    connection.start()
    await advance(0)
    const early = connection.send({ channel_id: CHANNEL, content: 'before open' }, 'c-early')
    connection.send({ channel_id: CHANNEL, content: 'after it' }, 'c-next')
    last().open()
    expect(last().written.map((f) => f.id)).toEqual(['c-early'])
    last().frame(message(1, 'c-early'))
    last().drop()
    await advance(1000)
    expect(sockets).toHaveLength(2)
    last().open()
    expect(last().written.map((f) => f.id)).toEqual(['resume', 'c-early'])
    last().frame({ type: 'message.ack', id: 'c-early', payload: { status: 'stored', message_id: '1001', channel_id: CHANNEL } })
    await expect(early.acked).resolves.toMatchObject({ message_id: '1001' })
    expect(last().written.map((f) => f.id)).toEqual(['resume', 'c-early', 'c-next'])
    expect(connection.pendingIds()).toEqual(['c-next'])
  })

  it('a retryable refusal is resent with the same id after retry_after_ms, or a backoff, before the next', async () => {
    const { connection, last } = setup()
    connection.start()
    await advance(0)
    last().open()
    connection.send({ channel_id: CHANNEL, content: 'x' }, 'c-1')
    connection.send({ channel_id: CHANNEL, content: 'y' }, 'c-2')
    connection.send({ channel_id: 'other', content: 'z' }, 'o-1')
    last().frame({ type: 'error', id: 'c-1', payload: { code: 'rate_limited', retryable: true, message: '…', retry_after_ms: 700 } })
    last().frame({ type: 'error', id: 'o-1', payload: { code: 'publish_failed', retryable: true, message: '…' } })
    expect(connection.pendingIds()).toEqual(['c-1', 'c-2', 'o-1'])
    await advance(249) // the backoff's second ceiling (500 ms) × 0.5
    expect(last().written.map((f) => f.id)).toEqual(['c-1', 'o-1'])
    await advance(1)
    expect(last().written.map((f) => f.id)).toEqual(['c-1', 'o-1', 'o-1'])
    await advance(450)
    expect(last().written.map((f) => f.id)).toEqual(['c-1', 'o-1', 'o-1', 'c-1'])
    last().frame({ type: 'message.ack', id: 'c-1', payload: { status: 'stored', message_id: '5', channel_id: CHANNEL } })
    expect(last().written.map((f) => f.id)).toEqual(['c-1', 'o-1', 'o-1', 'c-1', 'c-2'])
  })
})

describe('reconnecting', () => {
  it('backs off with jitter, resumes with sync from the last seq had, and shows reconnecting', async () => {
    const { connection, last, sockets, statuses } = setup()
    connection.start()
    await advance(0)
    last().open()
    for (const seq of [1, 2, 3]) last().frame(message(seq))
    last().drop(1012)
    expect(connection.status).toBe('reconnecting')
    await advance(124) // 0.5 × 250 ms
    expect(sockets).toHaveLength(1)
    await advance(1)
    expect(sockets).toHaveLength(2)
    expect(last().url).toBe('ws://cell.test/ws?resume=true')
    last().open()
    expect(last().written[0]).toEqual({ type: 'sync', id: 'resume', payload: { channels: { [CHANNEL]: 3 } } })
    expect(statuses).toEqual(['connecting', 'open', 'reconnecting', 'open'])
  })

  it('waits longer after each failed attempt, up to the cap', async () => {
    const { connection, sockets, last } = setup()
    connection.start()
    await advance(0)
    for (const expected of [125, 250, 500, 1000]) {
      last().drop()
      const before = sockets.length
      await advance(expected - 1)
      expect(sockets.length).toBe(before)
      await advance(1)
      expect(sockets.length).toBe(before + 1)
    }
    expect(backoffDelay(40, { baseMs: 250, maxMs: 15_000 }, () => 0.999)).toBe(14_985)
  })

  it('stops after its session is revoked, and refreshes its token after it expired', async () => {
    const refresh = vi.fn(async () => 'tok-2')
    const { connection, last, sockets } = setup({ refresh })
    connection.start()
    await advance(0)
    last().open()
    last().drop(4001)
    await advance(200)
    expect(refresh).toHaveBeenCalledTimes(1)
    expect(last().protocols).toEqual(['chat.v1', 'bearer.tok-2'])
    last().open()
    last().drop(4003)
    await advance(60_000)
    expect(connection.status).toBe('revoked')
    expect(sockets).toHaveLength(2)
  })

  it('gives the socket up when the device goes offline, and reconnects as soon as it is back', async () => {
    const { connection, last, sockets } = setup()
    connection.start()
    await advance(0)
    last().open()
    last().frame(message(1))
    connection.networkDown()
    expect(connection.status).toBe('reconnecting')
    expect(last().readyState).toBe(3)
    connection.networkUp()
    await advance(0)
    expect(sockets).toHaveLength(2)
    last().open()
    expect(last().written[0].payload.channels).toEqual({ [CHANNEL]: 1 })
  })

  it('starts from the seqs the client had from before, resuming at once', async () => {
    const { connection, last } = setup({ channels: { [CHANNEL]: 40 } })
    connection.start()
    await advance(0)
    expect(last().url).toContain('resume=true')
    last().open()
    expect(last().written[0].payload.channels).toEqual({ [CHANNEL]: 40 })
  })
})

describe('ordering', () => {
  it('drops repeated seqs and asks once for the messages of a gap', async () => {
    const { connection, last, seen } = setup()
    connection.start()
    await advance(0)
    last().open()
    last().frame(message(1))
    last().frame(message(1))
    last().frame(message(3))
    last().frame(message(4))
    const syncs = last().written.filter((f) => f.type === 'sync')
    expect(syncs).toEqual([{ type: 'sync', id: `gap-${CHANNEL}`, payload: { channels: { [CHANNEL]: 1 } } }])
    last().frame(message(2))
    last().frame(message(3))
    last().frame({ type: 'sync.done', payload: { channel_id: CHANNEL, last_seq: 4, truncated: false } })
    expect(seen).toEqual([1, 3, 4, 2])
    expect(connection.seqs.contiguous(CHANNEL)).toBe(4)
  })

  it('counts changes in the seqs of their channel: no gap for them, a repeated one dropped', async () => {
    const { connection, last, seen } = setup()
    const changes: number[] = []
    connection.on('change', (c) => changes.push(c.payload.seq))
    connection.start()
    await advance(0)
    last().open()
    const reaction = { type: 'reaction.updated', payload: { channel_id: CHANNEL, seq: 2, message_id: '1001', emoji: '👍', user_id: 'u', added: true, count: 1 } }
    last().frame(message(1))
    last().frame(reaction)
    last().frame(message(3))
    last().frame(reaction)
    expect(seen).toEqual([1, 3])
    expect(changes).toEqual([2])
    expect(last().written.filter((f) => f.type === 'sync')).toEqual([])
    connection.change({ type: 'reaction.add', payload: { channel_id: CHANNEL, message_id: '1001', emoji: '🎉' } }, 'r-1')
    expect(last().written.at(-1)).toMatchObject({ type: 'reaction.add', id: 'r-1' })
  })

  it('starts a channel first seen live at its first message, with no backlog asked for', async () => {
    const { connection, last, seen } = setup()
    connection.start()
    await advance(0)
    last().open()
    last().frame(message(500))
    last().frame(message(501))
    expect(seen).toEqual([500, 501])
    expect(last().written.filter((f) => f.type === 'sync')).toEqual([])
    expect(connection.seqs.contiguous(CHANNEL)).toBe(501)
  })

  it('asks again after a truncated sync, from where it stopped', async () => {
    const { connection, last } = setup()
    connection.start()
    await advance(0)
    last().open()
    last().frame({ type: 'sync.done', payload: { channel_id: CHANNEL, last_seq: 1000, truncated: true } })
    expect(last().written.at(-1)).toEqual({ type: 'sync', id: 'more', payload: { channels: { [CHANNEL]: 1000 } } })
  })
})

describe('SeqTracker', () => {
  it('keeps every seq up to the first hole, and what came above it', () => {
    const seqs = new SeqTracker()
    expect([1, 2, 5, 2, 3, 5, 4].map((s) => seqs.accept('a', s))).toEqual([true, true, true, false, true, false, true])
    expect(seqs.contiguous('a')).toBe(5)
    expect(seqs.hasGap('a')).toBe(false)
    seqs.start('b', 10)
    expect(seqs.accept('b', 10)).toBe(false)
    expect(seqs.syncPayload()).toEqual({ a: 5, b: 10 })
  })
})

