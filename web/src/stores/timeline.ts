/**
 * One channel's messages as the user sees them: the stored ones in `seq` order, then the
 * user's own sends not stored yet, in the order sent. A send shows at once as `pending`, is
 * `sent` on its ack (durable), takes its place by `seq` when its `message.new` comes (matched by
 * `client_id`, which is unique per sender), or is `failed`, to retry with the same
 * `client_id`. A message arriving twice is kept once.
 */
import type { ChangeApplied, MessageView } from '../protocol/frames'

export type SendState = 'pending' | 'sent' | 'failed'

export interface OwnSend {
  clientId: string
  content: string
  /** Upload ids sent with it. */
  attachments: string[]
  /** The message it answers. */
  reply?: string
  state: SendState
  error?: string
}

export type Entry = { kind: 'stored'; message: MessageView } | ({ kind: 'own' } & OwnSend)

export class Timeline {
  private readonly stored = new Map<number, MessageView>()
  /** The stored messages by id, and the user's own by `client_id`: a quote or an edit finds its message at once. */
  private readonly ids = new Map<string, MessageView>()
  private readonly clientIds = new Set<string>()
  private readonly own = new Map<string, OwnSend>()
  /** The `seq`s held, ascending. */
  private order: number[] = []

  /** The timeline as `me` (a user id) sees it: their sends are the own ones. */
  constructor(private readonly me: string) {}

  /** A stored message (`message.new`, a history page): its own send, if any, is done. */
  store(message: MessageView): void {
    const seq = Number(message.seq)
    if (message.client_id && message.sender?.id === this.me) this.own.delete(message.client_id)
    if (!this.stored.has(seq)) this.order.splice(this.insertionPoint(seq), 0, seq)
    this.stored.set(seq, message)
    this.ids.set(message.message_id, message)
    if (message.client_id && message.sender?.id === this.me) this.clientIds.add(message.client_id)
  }

  /** Where `seq` goes in `order`: after every lower one (a binary search; pages come in whole at either end). */
  private insertionPoint(seq: number): number {
    let [low, high] = [0, this.order.length]
    while (low < high) {
      const mid = (low + high) >>> 1
      if (this.order[mid]! < seq) low = mid + 1
      else high = mid
    }
    return low
  }

  /**
   * An edit, delete or reaction applied to a stored message held here (one not held is in an
   * older page, which comes from history as it is now). Reactions keep the count the server
   * says and the user's own flag from whose reaction changed.
   */
  apply(change: ChangeApplied): void {
    const message = this.byId(change.payload.message_id)
    if (!message) return
    switch (change.type) {
      case 'message.updated':
        message.content = change.payload.content
        message.edited_at = change.payload.edited_at
        break
      case 'message.deleted':
        Object.assign(message, { deleted: true, content: '', reactions: [] })
        break
      case 'reaction.updated': {
        const { emoji, count, user_id, added } = change.payload
        const reactions = (message.reactions ?? []).filter((r) => r.emoji !== emoji)
        const before = message.reactions?.find((r) => r.emoji === emoji)
        const me = user_id === this.me ? added : (before?.me ?? false)
        if (count > 0) {
          const at = message.reactions?.findIndex((r) => r.emoji === emoji) ?? -1
          reactions.splice(at === -1 ? reactions.length : at, 0, { emoji, count, me })
        }
        message.reactions = reactions
        break
      }
    }
  }

  /** The user sent `content` as `clientId`: shown at once, pending. */
  sending(clientId: string, content: string, attachments: string[] = [], reply?: string): void {
    if (this.isStored(clientId)) return
    this.own.set(clientId, { clientId, content, attachments, reply, state: 'pending' })
  }

  /** Its ack came: it is durable, its place comes with its `seq`. */
  acked(clientId: string): void {
    const send = this.own.get(clientId)
    if (send) send.state = 'sent'
  }

  failed(clientId: string, error: string): void {
    const send = this.own.get(clientId)
    if (send) Object.assign(send, { state: 'failed', error })
  }

  /** A failed send goes again: the same `clientId`, so the server stores it at most once. */
  retry(clientId: string): OwnSend | undefined {
    const send = this.own.get(clientId)
    if (!send || send.state !== 'failed') return undefined
    send.state = 'pending'
    delete send.error
    return send
  }

  /** The lowest `seq` held, for the next page of older history (`before_seq`). */
  oldestSeq(): number | undefined {
    return this.order[0]
  }

  entries(): Entry[] {
    const stored: Entry[] = this.order.map((seq) => ({ kind: 'stored', message: this.stored.get(seq)! }))
    const own: Entry[] = [...this.own.values()].map((send) => ({ kind: 'own', ...send }))
    return [...stored, ...own]
  }

  /** A stored message held here, by id (a reply's quote). */
  find(messageId: string): MessageView | undefined {
    return this.byId(messageId)
  }

  private byId(messageId: string): MessageView | undefined {
    return this.ids.get(messageId)
  }

  private isStored(clientId: string): boolean {
    return this.clientIds.has(clientId)
  }
}
