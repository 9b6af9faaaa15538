import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { useReceipts } from '../src/stores/receipts'
import { useSession } from '../src/stores/session'

/** The receipts store over a session whose REST answers `reads` for `GET /channels/{id}/reads`. */
function receiptsWith(reads: { reads: { user_id: string; last_read_seq: number }[]; next_cursor?: string }) {
  const session = useSession()
  session.user = { id: 'me' } as never
  const get = vi.fn(async () => ({ data: reads }))
  ;(session as unknown as { api: unknown }).api = { GET: get }
  return { receipts: useReceipts(), get }
}

describe('read receipts', () => {
  beforeEach(() => setActivePinia(createPinia()))

  it('start from the positions REST gives, then follow receipts and messages, never moving back', async () => {
    const { receipts, get } = receiptsWith({ reads: [{ user_id: 'bob', last_read_seq: 3 }, { user_id: 'me', last_read_seq: 9 }] })
    await receipts.load('c')
    await receipts.load('c')
    expect(get).toHaveBeenCalledTimes(1)
    expect(receipts.seenBy('c', 3)).toEqual(['bob'])
    expect(receipts.seenBy('c', 4)).toEqual([]) // the user is never among the readers
    receipts.apply('c', 'bob', 5) // receipt.updated
    receipts.apply('c', 'bob', 2) // an older position comes late
    receipts.apply('c', 'carol', 6) // carol's own message: read up to it
    expect(receipts.seenBy('c', 5)).toEqual(['bob', 'carol'])
    expect(receipts.seenBy('c', 6)).toEqual(['carol'])
    receipts.clear()
    expect(receipts.seenBy('c', 1)).toEqual([])
  })

  it('show nothing for a channel too large for receipts', async () => {
    const { receipts } = receiptsWith({ reads: [{ user_id: 'bob', last_read_seq: 3 }], next_cursor: 'bob' })
    await receipts.load('big')
    receipts.apply('big', 'carol', 7)
    expect(receipts.seenBy('big', 1)).toEqual([])
  })
})
