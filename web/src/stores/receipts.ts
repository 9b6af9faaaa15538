/**
 * How far the other members of each small channel have read ("seen by"): the positions of
 * `GET /channels/{id}/reads` when a channel opens, then each `receipt.updated` the server
 * sends for channels of at most `gateway.receipts_max_members` members. A member's own message
 * counts as read up to it, as the server counts it (and sends no receipt for it). A channel
 * with more members than that shows none (the server sends no receipts for it either).
 */
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import { useSession } from './session'

/** The server's `gateway.receipts_max_members` by default: larger channels show no receipts. */
const MAX_MEMBERS = 20

export const useReceipts = defineStore('receipts', () => {
  const session = useSession()
  /** Channel → member → the `seq` they have read up to (the user left out). */
  const positions = reactive<Record<string, Record<string, number>>>({})
  /** Channels with more members than receipts are sent for. */
  const large = reactive(new Set<string>())

  /** A member's position moved; it never moves back. */
  function apply(channel: string, user: string, seq: number): void {
    if (user === session.user?.id) return
    const members = (positions[channel] ??= {})
    members[user] = Math.max(members[user] ?? 0, seq)
  }

  /** The channel's positions now (once per channel; receipts keep them current). */
  async function load(channel: string): Promise<void> {
    if (channel in positions) return
    positions[channel] = {}
    const { data } = await session.api.GET('/api/v1/channels/{id}/reads', {
      params: { path: { id: channel }, query: { limit: MAX_MEMBERS } },
    })
    if (data?.next_cursor) large.add(channel)
    if (!data || data.next_cursor) return
    for (const read of data.reads) apply(channel, read.user_id, Number(read.last_read_seq ?? 0))
  }

  /** The members (ids) who have read message `seq` of `channel`. */
  function seenBy(channel: string, seq: number): string[] {
    if (large.has(channel)) return []
    return Object.entries(positions[channel] ?? {})
      .filter(([, read]) => read >= seq)
      .map(([user]) => user)
  }

  function clear(): void {
    for (const key of Object.keys(positions)) delete positions[key]
    large.clear()
  }

  return { apply, load, seenBy, clear }
})
