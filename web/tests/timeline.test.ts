import { describe, expect, it } from 'vitest'
import { Timeline } from '../src/stores/timeline'

const ME = 'user-me'

const message = (seq: number, clientId?: string, sender = ME) =>
  ({ message_id: String(100 + seq), channel_id: 'c', seq, content: `m${seq}`, client_id: clientId, sender: { id: sender } }) as any

const shown = (timeline: Timeline) =>
  timeline.entries().map((e) => (e.kind === 'stored' ? `#${e.message.seq}` : `${e.clientId}:${e.state}`))

describe('a timeline', () => {
  it('applies edits, deletes and reactions to the messages it holds', () => {
    const timeline = new Timeline(ME)
    timeline.store(message(1))
    const change = (type: string, payload: object) => ({ type, payload: { channel_id: 'c', message_id: '101', ...payload } }) as any
    timeline.apply(change('reaction.updated', { seq: 2, emoji: '👍', user_id: 'other', added: true, count: 1 }))
    timeline.apply(change('reaction.updated', { seq: 3, emoji: '👍', user_id: ME, added: true, count: 2 }))
    timeline.apply(change('reaction.updated', { seq: 4, emoji: '🎉', user_id: 'other', added: true, count: 1 }))
    timeline.apply(change('reaction.updated', { seq: 5, emoji: '🎉', user_id: 'other', added: false, count: 0 }))
    timeline.apply(change('message.updated', { seq: 6, content: 'edited', edited_at: '2026-12-07T00:00:00Z' }))
    const [entry] = timeline.entries() as any
    expect(entry.message.reactions).toEqual([{ emoji: '👍', count: 2, me: true }])
    expect([entry.message.content, entry.message.edited_at]).toEqual(['edited', '2026-12-07T00:00:00Z'])
    timeline.apply(change('message.deleted', { seq: 7 }))
    expect([entry.message.deleted, entry.message.content, entry.message.reactions]).toEqual([true, '', []])
  })

  it('orders stored messages by seq, whatever order they come in, and keeps each once', () => {
    const timeline = new Timeline(ME)
    for (const seq of [3, 1, 2, 3, 5, 4, 1]) timeline.store(message(seq))
    expect(shown(timeline)).toEqual(['#1', '#2', '#3', '#4', '#5'])
    expect(timeline.oldestSeq()).toBe(1)
  })

  it('shows a send at once, sent on its ack, in its place once stored', () => {
    const timeline = new Timeline(ME)
    timeline.store(message(1))
    timeline.sending('mine', 'hello')
    expect(shown(timeline)).toEqual(['#1', 'mine:pending'])
    timeline.acked('mine')
    expect(shown(timeline)).toEqual(['#1', 'mine:sent'])
    timeline.store(message(2, 'mine', 'someone-else'))
    // Another user's message with the same client_id is not my send.
    expect(shown(timeline)).toEqual(['#1', '#2', 'mine:sent'])
    timeline.store(message(3, 'mine'))
    expect(shown(timeline)).toEqual(['#1', '#2', '#3'])
  })

  it('offers a failed send for retry with the same id, never twice once stored', () => {
    const timeline = new Timeline(ME)
    timeline.sending('mine', 'hello')
    timeline.failed('mine', 'publish_failed')
    expect(shown(timeline)).toEqual(['mine:failed'])
    expect(timeline.retry('mine')?.clientId).toBe('mine')
    expect(timeline.retry('mine')).toBeUndefined()
    timeline.store(message(1, 'mine'))
    timeline.sending('mine', 'hello')
    expect(shown(timeline)).toEqual(['#1'])
  })
})
