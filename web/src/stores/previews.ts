/**
 * The sidebar's view of each channel's newest message: kept from `GET /channels` (which
 * carries `last_message`), moved by each newer `message.new`, and changed by an edit or delete
 * of that message; channels ordered by it, the most recently active first.
 */
import type { components } from '../api/schema'
import type { ChangeApplied, MessageView } from '../protocol/frames'

type Channel = components['schemas']['Channel']
export type LastMessage = components['schemas']['LastMessage']

/** As many characters as the server's preview carries. */
export const PREVIEW_CHARS = 100

const start = (text: string) => [...text].slice(0, PREVIEW_CHARS).join('')

/** `message` becomes the channel's preview unless the one it has is newer. */
export function noteMessage(channel: Channel, message: MessageView): void {
  const held = channel.last_message
  if (held && Number(held.seq) >= Number(message.seq)) return
  channel.last_message = {
    message_id: message.message_id,
    seq: message.seq,
    sender: message.sender,
    content: message.deleted ? '' : start(message.content),
    content_type: message.content_type,
    created_at: message.created_at,
    ...(message.deleted ? { deleted: true } : {}),
  }
}

/** An edit or delete of the message previewed shows in the preview. */
export function noteChange(channel: Channel, change: ChangeApplied): void {
  const held = channel.last_message
  if (!held || held.message_id !== change.payload.message_id) return
  if (change.type === 'message.updated') held.content = start(change.payload.content)
  if (change.type === 'message.deleted') Object.assign(held, { content: '', deleted: true })
}

/**
 * A channel as a fresh list gives it, but with what the one held already knew if that is
 * newer: a message that came live while the list was being read moved the preview, the last
 * `seq` and the unread count past what the list says.
 */
export function keepNewer(fresh: Channel, held: Channel | undefined): Channel {
  if (!held || Number(held.last_seq) <= Number(fresh.last_seq)) return fresh
  return { ...fresh, last_seq: held.last_seq, last_message: held.last_message, unread_count: held.unread_count }
}

/** When a channel was last active: its newest message, or its creation. */
const activeAt = (channel: Channel) => Date.parse(channel.last_message?.created_at ?? channel.created_at)

/** The most recently active first; ties by id, so the order is stable. */
export function byActivity(a: Channel, b: Channel): number {
  return activeAt(b) - activeAt(a) || a.id.localeCompare(b.id)
}

/** The user hears nothing of the channel: its level is `none`, or it is muted for now. */
export function isMuted(channel: Channel, now = Date.now()): boolean {
  return channel.notify_level === 'none' || (!!channel.muted_until && Date.parse(channel.muted_until) > now)
}

/** One line for the sidebar: who (you, or the sender outside a dm) and what. */
export function previewLine(channel: Channel, me: string): string {
  const last = channel.last_message
  if (!last) return ''
  const who = last.sender.id === me ? 'You: ' : channel.type === 'dm' ? '' : `${last.sender.username}: `
  const what = last.deleted
    ? 'message deleted'
    : last.content.trim() || (last.content_type === 'image' ? '📷 Image' : last.content_type === 'file' ? '📎 File' : '')
  return `${who}${what.replace(/\s+/g, ' ')}`
}
