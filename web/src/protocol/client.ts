/**
 * The chat socket, with no UI in it: it connects with the token as a subprotocol (never in the
 * URL), reconnects with jittered backoff, resumes with `sync` from the last `seq` it has of each
 * channel, resends unacknowledged sends with the same ids (the server acks a resend as the
 * first), drops repeated `seq`s and fills gaps. What `docs/protocol.md` §6 asks of a client.
 *
 * Sends to one channel go one at a time, each after the one before it is acknowledged: a
 * refused send (over the rate limit, say) is resent before any later one goes, so a person's
 * messages are stored in the order they were written. A person does not type faster than an
 * ack comes back.
 */
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff'
import {
  CLOSE,
  SUBPROTOCOL,
  type ChangeApplied,
  type ChangeFrame,
  type ClientFrame,
  type ErrorPayload,
  type MessageView,
  type SendPayload,
  type ServerFrame,
} from './frames'
import { SeqTracker } from './seqs'

/** What the connection is doing, for a "reconnecting…" banner. */
export type Status = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'revoked' | 'stopped'

/** The part of the browser's `WebSocket` this module uses. */
export interface SocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}

export type SocketFactory = (url: string, protocols: string[]) => SocketLike

/** A send or change on its way: its id, and its ack (it is durable then). */
export interface Submitted {
  clientId: string
  acked: Promise<{ message_id: string; channel_id: string }>
}

export interface ConnectionOptions {
  /** The socket's URL, `wss://host/ws`. */
  url: string
  /** The access token to connect with (asked on every connect). */
  token: () => string | Promise<string>
  /** A fresh access token after the socket's expired (`4001`); without it, `token` is asked again. */
  refresh?: () => Promise<string>
  createSocket?: SocketFactory
  backoff?: BackoffOptions
  random?: () => number
  /** The last `seq` the client has of each channel, from before (history, storage). */
  channels?: Record<string, number>
}

/** Why a send failed for good: a refusal the server says not to retry. */
export class SendRefused extends Error {
  constructor(readonly error: ErrorPayload) {
    super(`${error.code}: ${error.message}`)
  }
}

interface Pending {
  frame: ClientFrame
  retries?: number
  resolve: (ack: { message_id: string; channel_id: string }) => void
  reject: (error: SendRefused) => void
}

type Handlers = {
  status: (status: Status) => void
  message: (message: MessageView) => void
  /** An edit, delete or reaction applied to a stored message (repeats dropped, like messages). */
  change: (change: ChangeApplied) => void
  frame: (frame: ServerFrame) => void
}

const OPEN = 1

export class ChatConnection {
  readonly seqs = new SeqTracker()
  status: Status = 'idle'
  private socket: SocketLike | null = null
  private attempt = 0
  private timer: ReturnType<typeof setTimeout> | null = null
  private readonly pending = new Map<string, Pending>()
  /** Per channel, the ids of its sends not acknowledged yet, in the order sent; the first is out. */
  private readonly queues = new Map<string, string[]>()
  private readonly gapSyncs = new Set<string>()
  private readonly handlers: { [K in keyof Handlers]: Handlers[K][] } = { status: [], message: [], change: [], frame: [] }
  private resumed = false
  private refreshNext = false
  private sent = 0

  constructor(private readonly options: ConnectionOptions) {
    for (const [channel, seq] of Object.entries(options.channels ?? {})) this.seqs.start(channel, seq)
    this.resumed = Object.keys(options.channels ?? {}).length > 0
  }

  on<K extends keyof Handlers>(event: K, handler: Handlers[K]): () => void {
    this.handlers[event].push(handler)
    return () => {
      this.handlers[event] = this.handlers[event].filter((h) => h !== handler) as never
    }
  }

  /** Opens the socket, and keeps one open until `stop`. */
  start(): void {
    if (this.status === 'idle' || this.status === 'stopped') void this.connect()
  }

  /** Closes the socket for good; pending sends stay pending (a later `start` resends them). */
  stop(): void {
    this.setStatus('stopped')
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.socket?.close(1000)
    this.socket = null
  }

  /**
   * The device went offline (the browser's `offline` event): the socket is given up at once
   * rather than after the server's pings go unanswered, and the client shows it reconnecting.
   */
  networkDown(): void {
    if (this.status === 'stopped' || this.status === 'revoked' || !this.socket) return
    const socket = this.socket
    this.socket = null
    socket.close(1000)
    this.retry()
  }

  /** The device is back online: reconnect now, not at the end of a backoff. */
  networkUp(): void {
    if (this.status !== 'reconnecting' || !this.timer) return
    clearTimeout(this.timer)
    this.timer = null
    this.attempt = 0
    void this.connect()
  }

  /**
   * Sends a message; resolves with its ack (the message is durable then). `clientId` is its
   * idempotency key: retrying a failed send with the same id never stores it twice.
   */
  send(payload: SendPayload, clientId = this.nextId()): Submitted {
    return this.submit({ type: 'message.send', id: clientId, payload })
  }

  /** Changes a stored message (edit, delete, reaction); acked as a send is, in the same queue. */
  change(frame: Omit<ChangeFrame, 'id'>, id = this.nextId()): Submitted {
    return this.submit({ ...frame, id } as ChangeFrame & { id: string })
  }

  private submit(frame: ClientFrame & { id: string; payload: { channel_id: string } }): Submitted {
    const clientId = frame.id
    const payload = frame.payload
    const acked = new Promise<{ message_id: string; channel_id: string }>((resolve, reject) => {
      this.pending.set(clientId, { frame, resolve, reject })
    })
    const queue = this.queues.get(payload.channel_id) ?? []
    this.queues.set(payload.channel_id, [...queue, clientId])
    if (queue.length === 0) this.write(frame)
    return { clientId, acked }
  }

  /** Sends a frame that needs no answer (`message.read`, `typing.start`, …) if the socket is open. */
  notify(frame: ClientFrame): void {
    this.write(frame)
  }

  /** The ids of the sends not acknowledged yet, in the order sent. */
  pendingIds(): string[] {
    return [...this.pending.keys()]
  }

  private nextId(): string {
    this.sent += 1
    const random = Math.floor((this.options.random ?? Math.random)() * 2 ** 32).toString(36)
    return `web-${Date.now().toString(36)}-${random}-${this.sent}`
  }

  private async connect(): Promise<void> {
    this.setStatus(this.attempt === 0 && !this.resumed ? 'connecting' : 'reconnecting')
    let token: string
    try {
      token = this.refreshNext && this.options.refresh ? await this.options.refresh() : await this.options.token()
    } catch {
      this.retry()
      return
    }
    this.refreshNext = false
    if (this.status === 'stopped') return
    const resume = this.resumed && Object.keys(this.seqs.syncPayload()).length > 0
    const url = resume ? `${this.options.url}${this.options.url.includes('?') ? '&' : '?'}resume=true` : this.options.url
    const create = this.options.createSocket ?? ((u, p) => new WebSocket(u, p) as unknown as SocketLike)
    const socket = create(url, [SUBPROTOCOL, `bearer.${token}`])
    this.socket = socket
    socket.onopen = () => this.opened(socket, resume)
    socket.onmessage = (event) => this.received(event.data)
    socket.onclose = (event) => this.closed(socket, event.code)
    socket.onerror = () => {}
  }

  private opened(socket: SocketLike, resume: boolean): void {
    if (socket !== this.socket) return
    this.attempt = 0
    this.resumed = true
    this.gapSyncs.clear()
    // The first frame: the server holds live messages of the channels named until their backlog is out.
    if (resume) this.write({ type: 'sync', id: 'resume', payload: { channels: this.seqs.syncPayload() } })
    for (const queue of this.queues.values()) this.write(this.pending.get(queue[0])!.frame)
    this.setStatus('open')
  }

  private closed(socket: SocketLike, code: number): void {
    if (socket !== this.socket) return
    this.socket = null
    if (this.status === 'stopped') return
    if (code === CLOSE.sessionRevoked) {
      this.setStatus('revoked')
      return
    }
    this.refreshNext = code === CLOSE.tokenExpired
    this.retry()
  }

  private retry(): void {
    if (this.status === 'stopped' || this.status === 'revoked') return
    this.setStatus('reconnecting')
    const delay = backoffDelay(this.attempt, this.options.backoff ?? DEFAULT_BACKOFF, this.options.random)
    this.attempt += 1
    this.timer = setTimeout(() => {
      this.timer = null
      void this.connect()
    }, delay)
  }

  private received(data: unknown): void {
    if (typeof data !== 'string') return
    let frame: ServerFrame
    try {
      frame = JSON.parse(data) as ServerFrame
    } catch {
      return
    }
    switch (frame.type) {
      case 'message.new':
        return this.messageNew(frame.payload)
      case 'message.updated':
      case 'message.deleted':
      case 'reaction.updated':
        if (this.inSeq(frame.payload.channel_id, frame.payload.seq)) this.emit('change', frame)
        return
      case 'message.ack':
        return this.settle(frame.id, (p) => p.resolve(frame.payload))
      case 'sync.done':
        return this.syncDone(frame.payload)
      case 'error':
        if (frame.id) this.refused(frame.id, frame.payload)
        break
    }
    this.emit('frame', frame)
  }

  private messageNew(message: MessageView): void {
    // A channel first seen live (joined, or added to, while connected) starts at this message:
    // what came before is history, read over REST, not a backlog to sync.
    if (!this.seqs.knows(message.channel_id)) this.seqs.start(message.channel_id, Number(message.seq) - 1)
    if (this.inSeq(message.channel_id, Number(message.seq))) this.emit('message', message)
  }

  /**
   * Takes `seq` of `channel` (messages and changes share a channel's `seq`s): false for a
   * repeat. A hole below it is asked for once, with a `sync` from the last `seq` before it.
   */
  private inSeq(channel: string, seq: number): boolean {
    if (!this.seqs.accept(channel, seq)) return false
    if (this.seqs.hasGap(channel) && !this.gapSyncs.has(channel)) {
      this.gapSyncs.add(channel)
      this.write({ type: 'sync', id: `gap-${channel}`, payload: { channels: { [channel]: this.seqs.contiguous(channel) } } })
    }
    return true
  }

  private syncDone(done: { channel_id: string; last_seq: number; truncated: boolean }): void {
    this.gapSyncs.delete(done.channel_id)
    if (done.truncated) {
      this.write({ type: 'sync', id: 'more', payload: { channels: { [done.channel_id]: done.last_seq } } })
    }
  }

  /**
   * A send refused: for good (rejected), or for now, resent with the same id after the server's
   * `retry_after_ms` (`rate_limited`) or a backoff of its own (`publish_failed`, `unavailable`).
   */
  private refused(id: string, error: ErrorPayload & { retry_after_ms?: number }): void {
    const pending = this.pending.get(id)
    if (!pending) return
    if (!error.retryable) return this.settle(id, (p) => p.reject(new SendRefused(error)))
    pending.retries = (pending.retries ?? 0) + 1
    const delay = error.retry_after_ms ?? backoffDelay(pending.retries, this.options.backoff ?? DEFAULT_BACKOFF, this.options.random)
    setTimeout(() => {
      if (this.pending.get(id) === pending) this.write(pending.frame)
    }, delay)
  }

  /** A send is done (acked or refused for good): the next of its channel goes out. */
  private settle(id: string | undefined, how: (pending: Pending) => void): void {
    const pending = id === undefined ? undefined : this.pending.get(id)
    if (!pending || id === undefined) return
    this.pending.delete(id)
    const channel = (pending.frame.payload as { channel_id: string }).channel_id
    const rest = (this.queues.get(channel) ?? []).filter((queued) => queued !== id)
    if (rest.length > 0) {
      this.queues.set(channel, rest)
      this.write(this.pending.get(rest[0])!.frame)
    } else {
      this.queues.delete(channel)
    }
    how(pending)
  }

  private write(frame: ClientFrame): void {
    if (this.socket?.readyState === OPEN && this.status !== 'stopped') this.socket.send(JSON.stringify(frame))
  }

  private setStatus(status: Status): void {
    if (this.status === status) return
    this.status = status
    this.emit('status', status)
  }

  private emit<K extends keyof Handlers>(event: K, ...args: Parameters<Handlers[K]>): void {
    for (const handler of this.handlers[event]) (handler as (...a: unknown[]) => void)(...args)
  }
}
