import { describe, expect, it } from 'vitest'
import { byActivity, isMuted, keepNewer, noteChange, noteMessage, previewLine } from '../src/stores/previews'

const ME = 'user-me'
const channel = (id: string, type = 'group', created_at = '2026-12-01T00:00:00Z') =>
  ({ id, type, name: id, created_at, last_seq: 0 }) as any
const message = (seq: number, content: string, sender = 'ada', at = `2026-12-08T00:00:${String(seq).padStart(2, '0')}Z`) =>
  ({ message_id: String(100 + seq), channel_id: 'c', seq, content, content_type: 'text', created_at: at, sender: { id: sender, username: sender } }) as any
const change = (type: string, message_id: string, extra: object = {}) => ({ type, payload: { channel_id: 'c', seq: 9, message_id, ...extra } }) as any

describe('channel previews', () => {
  it('follow the newest message, never an older one that comes later', () => {
    const c = channel('c')
    noteMessage(c, message(2, 'second'))
    noteMessage(c, message(1, 'first, from a history page')) // older: no change
    expect([c.last_message.seq, c.last_message.content]).toEqual([2, 'second'])
    noteMessage(c, message(3, 'x'.repeat(150) + '👍'.repeat(10)))
    expect([...c.last_message.content].length).toBe(100)
  })

  it('show an edit or delete of the message previewed, and ignore other messages’ changes', () => {
    const c = channel('c')
    noteMessage(c, message(1, 'hello'))
    noteChange(c, change('message.updated', '999', { content: 'not this one' }))
    expect(c.last_message.content).toBe('hello')
    noteChange(c, change('message.updated', '101', { content: 'hello, edited' }))
    expect(c.last_message.content).toBe('hello, edited')
    noteChange(c, change('message.deleted', '101'))
    expect([c.last_message.content, c.last_message.deleted]).toEqual(['', true])
    expect(previewLine(c, ME)).toBe('ada: message deleted')
  })

  it('say who wrote it: you, or the sender outside a dm; attachments by kind', () => {
    const group = channel('g')
    noteMessage(group, message(1, 'hi\nthere', ME))
    expect(previewLine(group, ME)).toBe('You: hi there')
    const dm = channel('d', 'dm')
    noteMessage(dm, { ...message(1, ''), content_type: 'image' })
    expect(previewLine(dm, ME)).toBe('📷 Image')
    expect(previewLine(channel('empty'), ME)).toBe('')
  })

  it('order channels by their last activity, the newest first, a quiet one by its creation', () => {
    const [a, b, quiet] = [channel('a'), channel('b'), channel('quiet', 'group', '2026-12-08T00:00:05Z')]
    noteMessage(a, message(1, 'a', 'ada', '2026-12-08T00:00:01Z'))
    noteMessage(b, message(1, 'b', 'ada', '2026-12-08T00:00:09Z'))
    expect([a, quiet, b].sort(byActivity).map((c) => c.id)).toEqual(['b', 'quiet', 'a'])
    noteMessage(a, message(2, 'a again', 'ada', '2026-12-08T00:00:10Z'))
    expect([a, quiet, b].sort(byActivity).map((c) => c.id)).toEqual(['a', 'b', 'quiet'])
  })
})

describe('a refreshed channel list', () => {
  it('keeps what came live while it was asked for, and takes the rest as the server says', () => {
    const fresh = { ...channel('c'), last_seq: 4, unread_count: 1, name: 'renamed' }
    const held = { ...channel('c'), last_seq: 5, unread_count: 2 }
    noteMessage(held, message(5, 'came live'))
    expect([keepNewer(fresh, held).name, keepNewer(fresh, held).last_seq, keepNewer(fresh, held).unread_count]).toEqual(['renamed', 5, 2])
    expect(keepNewer(fresh, held).last_message!.content).toBe('came live')
    expect(keepNewer({ ...fresh, last_seq: 6 }, held)).toEqual({ ...fresh, last_seq: 6 })
    expect(keepNewer(fresh, undefined)).toBe(fresh)
  })
})

describe('a muted channel', () => {
  it('is one whose level is none, or whose mute has not run out', () => {
    const now = Date.parse('2026-12-08T12:00:00Z')
    expect(isMuted({ ...channel('c'), notify_level: 'none' }, now)).toBe(true)
    expect(isMuted({ ...channel('c'), muted_until: '2026-12-08T13:00:00Z' }, now)).toBe(true)
    expect(isMuted({ ...channel('c'), notify_level: 'all', muted_until: '2026-12-08T11:00:00Z' }, now)).toBe(false)
    expect(isMuted(channel('c'), now)).toBe(false)
  })
})
