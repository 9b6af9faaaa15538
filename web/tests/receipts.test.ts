import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { MAX_MEMBERS, useReceipts } from '../src/stores/receipts'
import { useSession } from '../src/stores/session'

type Reads = { reads: { user_id: string; last_read_seq: number }[] }

/** The receipts store over a session whose REST answers `GET /channels/{id}/reads` with `answer()`. */
function receiptsWith(answer: () => Promise<{ data?: Reads }>) {
  const session = useSession()
  session.user = { id: 'me' } as never
  const get = vi.fn(answer)
  ;(session as unknown as { api: unknown }).api = { GET: get }
  return { receipts: useReceipts(), get }
}
const members = (n: number) => ({ reads: Array.from({ length: n }, (_, i) => ({ user_id: `u${i}`, last_read_seq: 4 })) })

describe('read receipts', () => {
  beforeEach(() => setActivePinia(createPinia()))

  it('start from the positions REST gives, then follow receipts and messages, never moving back', async () => {
    const { receipts, get } = receiptsWith(async () => ({ data: { reads: [{ user_id: 'bob', last_read_seq: 3 }, { user_id: 'me', last_read_seq: 9 }] } }))
    receipts.apply('c', 'carol', 2) // a message came in before the channel was opened
    await receipts.load('c')
    await receipts.load('c')
    expect(get).toHaveBeenCalledTimes(1)
    expect(receipts.seenBy('c', 2)).toEqual(['carol', 'bob'])
    expect(receipts.seenBy('c', 4)).toEqual([]) // the user is never among the readers
    receipts.apply('c', 'bob', 5) // receipt.updated
    receipts.apply('c', 'bob', 2) // an older position comes late
    receipts.apply('c', 'carol', 6) // carol's own message: read up to it
    expect(receipts.seenBy('c', 5)).toEqual(['carol', 'bob'])
    expect(receipts.seenBy('c', 6)).toEqual(['carol'])
  })

  it(`show for a channel of ${MAX_MEMBERS} members, and nothing for a larger one`, async () => {
    const { receipts } = receiptsWith(async () => ({ data: members(MAX_MEMBERS) }))
    await receipts.load('twenty')
    expect(receipts.seenBy('twenty', 4)).toHaveLength(MAX_MEMBERS)
    const larger = receiptsWith(async () => ({ data: members(MAX_MEMBERS + 1) })).receipts
    await larger.load('big')
    larger.apply('big', 'carol', 7)
    expect(larger.seenBy('big', 1)).toEqual([])
  })

  it('read the positions again after a failure, and after a reset (a reconnect)', async () => {
    let fail = true
    const { receipts, get } = receiptsWith(async () => (fail ? {} : { data: members(1) }))
    await receipts.load('c')
    expect(receipts.seenBy('c', 1)).toEqual([])
    fail = false
    await receipts.load('c')
    expect(receipts.seenBy('c', 1)).toEqual(['u0'])
    receipts.reset()
    expect(receipts.seenBy('c', 1)).toEqual([])
    await receipts.load('c')
    expect([get.mock.calls.length, receipts.seenBy('c', 1)]).toEqual([3, ['u0']])
  })

  it('drop an answer asked for before a reset', async () => {
    let answer!: (value: { data: Reads }) => void
    const { receipts } = receiptsWith(() => new Promise((done) => (answer = done)))
    const pending = receipts.load('c')
    receipts.reset() // signed out meanwhile
    answer({ data: members(2) })
    await pending
    expect(receipts.seenBy('c', 1)).toEqual([])
  })
})
