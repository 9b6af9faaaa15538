/**
 * How far the other members of each small channel have read ("seen by"): the positions of
 * `GET /channels/{id}/reads` when a channel opens, then each `receipt.updated` the server
 * sends for channels of at most `gateway.receipts_max_members` members. A member's own message
 * counts as read up to it, as the server counts it (and sends no receipt for it). A channel
 * with more members than that shows none: the server sends no receipts for it either.
 * Receipts are live frames, not replayed by `sync`: after a reconnect the positions are read
 * again (`reset`).
 */
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import { useSession } from './session'

/** The server's `gateway.receipts_max_members` by default: larger channels show no receipts. */
export const MAX_MEMBERS = 20

export const useReceipts = defineStore('receipts', () => {
  const session = useSession()
  /** Channel → member → the `seq` they have read up to (the user left out). */
  const positions = reactive<Record<string, Record<string, number>>>({})
  /** Channels whose positions were read (or are being read), and those too large for receipts. */
  const loaded = new Map<string, Promise<void>>()
  const large = reactive(new Set<string>())
  /** Bumped when everything is dropped: an answer asked for before it is not kept. */
  let epoch = 0

  /** A member's position moved; it never moves back. */
  function apply(channel: string, user: string, seq: number): void {
    if (user === session.user?.id) return
    const members = (positions[channel] ??= {})
    members[user] = Math.max(members[user] ?? 0, seq)
  }

  /** The channel's positions now, read once (again after a failure or a `reset`). */
  function load(channel: string): Promise<void> {
    let done = loaded.get(channel)
    if (!done) {
      done = read(channel).catch(() => void loaded.delete(channel))
      loaded.set(channel, done)
    }
    return done
  }

  async function read(channel: string): Promise<void> {
    const asked = epoch
    // One more than the largest channel with receipts: a full page means a larger one.
    const { data } = await session.api.GET('/api/v1/channels/{id}/reads', {
      params: { path: { id: channel }, query: { limit: MAX_MEMBERS + 1 } },
    })
    if (asked !== epoch) return
    if (!data) throw new Error('reads not read')
    if (data.reads.length > MAX_MEMBERS) large.add(channel)
    else for (const r of data.reads) apply(channel, r.user_id, Number(r.last_read_seq ?? 0))
  }

  /** The members (ids) who have read message `seq` of `channel`. */
  function seenBy(channel: string, seq: number): string[] {
    if (large.has(channel)) return []
    return Object.entries(positions[channel] ?? {})
      .filter(([, read]) => read >= seq)
      .map(([user]) => user)
  }

  /** Drops every position (signed out, or back from a reconnect: receipts were missed). */
  function reset(): void {
    epoch += 1
    for (const key of Object.keys(positions)) delete positions[key]
    loaded.clear()
    large.clear()
  }

  return { apply, load, seenBy, reset }
})
