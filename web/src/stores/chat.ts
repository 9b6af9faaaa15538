/**
 * The chat: the user's channels, a timeline per channel (history pages and live messages,
 * with the user's own sends shown at once), and the one socket (`ChatConnection`) everything
 * live comes through.
 */
import { defineStore } from 'pinia'
import { computed, reactive, ref, shallowRef } from 'vue'
import type { components } from '../api/schema'
import { ChatConnection, SendRefused, type Status } from '../protocol/client'
import type { MessageView } from '../protocol/frames'
import { useDirectory } from './directory'
import { useReceipts } from './receipts'
import { byActivity, keepNewer, noteChange, noteMessage } from './previews'
import { useSession } from './session'
import { Timeline, type Entry } from './timeline'

type Channel = components['schemas']['Channel']

const PAGE = 50

export const useChat = defineStore('chat', () => {
  const session = useSession()
  const directory = useDirectory()
  const receipts = useReceipts()
  const channels = ref<Channel[]>([])
  const current = ref<string | null>(null)
  const status = ref<Status>('idle')
  const hasOlder = reactive<Record<string, boolean>>({})
  /** Who is typing in each channel now (user ids, the user left out). */
  const typing = reactive<Record<string, string[]>>({})
  /** The names of the senders seen, for the typing indicator. */
  const names = reactive<Record<string, string>>({})
  let typedAt = 0
  const version = ref(0) // bumped on every timeline change: the views recompute from it
  const timelines = new Map<string, Timeline>()
  const connection = shallowRef<ChatConnection | null>(null)

  const me = () => session.user?.id ?? ''
  const timeline = (channel: string) => {
    let t = timelines.get(channel)
    if (!t) timelines.set(channel, (t = new Timeline(me())))
    return t
  }
  const touch = () => (version.value += 1)

  const entries = computed<Entry[]>(() => {
    void version.value
    return current.value ? timeline(current.value).entries() : []
  })
  /** The channels, the most recently active first (as the sidebar lists them). */
  const ordered = computed(() => [...channels.value].sort(byActivity))
  const currentChannel = computed(() => channels.value.find((c) => c.id === current.value) ?? null)

  /** Bumped by `stop()`: an answer asked for before it belongs to a session that is over. */
  let epoch = 0

  /** Every channel of the user, page after page (500 each). */
  async function allChannels(): Promise<Channel[] | undefined> {
    const all: Channel[] = []
    let cursor: string | undefined
    do {
      const query = cursor ? { limit: 500, cursor } : { limit: 500 }
      const { data } = await session.api.GET('/api/v1/channels', { params: { query } })
      if (!data) return undefined
      all.push(...data.channels)
      cursor = data.next_cursor ?? undefined
    } while (cursor)
    return all
  }

  async function start(): Promise<void> {
    const asked = epoch
    const listed = await allChannels()
    if (asked !== epoch) return
    channels.value = listed ?? []
    const base = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`
    const seqs = Object.fromEntries(channels.value.map((c) => [c.id, Number(c.last_seq)]))
    const live = new ChatConnection({
      url: base,
      token: () => session.token() ?? Promise.reject(new Error('logged out')),
      refresh: async () => (await session.refresh()) ?? Promise.reject(new Error('logged out')),
      channels: seqs,
    })
    let dropped = false
    live.on('status', (s) => {
      // Back after a drop: receipts sent meanwhile were missed; read the positions again.
      if (s === 'reconnecting') dropped = true
      if (s === 'open' && dropped) {
        dropped = false
        receipts.reset()
        if (current.value) void receipts.load(current.value)
      }
      status.value = s
    })
    live.on('message', received)
    live.on('change', (change) => {
      timeline(change.payload.channel_id).apply(change)
      const channel = channels.value.find((c) => c.id === change.payload.channel_id)
      if (channel) noteChange(channel, change)
      touch()
    })
    live.on('frame', (frame) => {
      if (frame.type === 'typing.update') typing[frame.payload.channel_id as string] = frame.payload.users as string[]
      if (frame.type === 'presence.update') directory.presence[frame.payload.user_id as string] = frame.payload.status as string
      if (frame.type === 'receipt.updated') {
        const { channel_id, user_id, last_read_seq } = frame.payload as { channel_id: string; user_id: string; last_read_seq: number }
        receipts.apply(channel_id, user_id, last_read_seq)
      }
      if (frame.type === 'read.updated') readElsewhere(frame.payload.channel_id as string, frame.payload.last_read_seq as number)
    })
    live.start()
    connection.value = live
    window.addEventListener('offline', networkDown)
    window.addEventListener('online', networkUp)
    if (!current.value && ordered.value[0]) await open(ordered.value[0].id)
  }

  const networkDown = () => connection.value?.networkDown()
  const networkUp = () => connection.value?.networkUp()

  function stop(): void {
    epoch += 1
    loading.clear()
    window.removeEventListener('offline', networkDown)
    window.removeEventListener('online', networkUp)
    connection.value?.stop()
    connection.value = null
    timelines.clear()
    channels.value = []
    current.value = null
    replyTo.value = null
    // What one user may see is not the next one's: every cache goes with the session.
    for (const cache of [hasOlder, typing, names]) {
      for (const key of Object.keys(cache)) delete (cache as Record<string, unknown>)[key]
    }
    directory.clear()
    receipts.reset()
  }

  function received(message: MessageView): void {
    names[message.sender.id] = message.sender.username
    timeline(message.channel_id).store(message)
    receipts.apply(message.channel_id, message.sender.id, Number(message.seq))
    const channel = channels.value.find((c) => c.id === message.channel_id)
    if (channel) {
      channel.last_seq = Math.max(Number(channel.last_seq), Number(message.seq))
      noteMessage(channel, message)
      if (message.channel_id === current.value) markRead(channel)
      else if (message.sender.id !== me()) channel.unread_count = (channel.unread_count ?? 0) + 1
    } else {
      void refreshChannels()
    }
    touch()
  }

  /** The list again (a channel joined or new), keeping what came live while it was asked for. */
  async function refreshChannels(): Promise<void> {
    const asked = epoch
    const listed = await allChannels()
    if (!listed || asked !== epoch) return
    const held = new Map(channels.value.map((c) => [c.id, c]))
    channels.value = listed.map((fresh) => keepNewer(fresh, held.get(fresh.id)))
  }

  async function open(channel: string): Promise<void> {
    current.value = channel
    void receipts.load(channel)
    if (!timelines.has(channel)) await loadOlder(channel)
    const row = channels.value.find((c) => c.id === channel)
    if (row) markRead(row)
    touch()
  }

  /** Pages of history being fetched, by channel: one at a time, however often the view asks. */
  const loading = new Map<string, Promise<void>>()

  /** The page of history before the oldest message held (the newest page at first). */
  function loadOlder(channel: string): Promise<void> {
    let page = loading.get(channel)
    if (!page) {
      page = fetchOlder(channel).finally(() => loading.delete(channel))
      loading.set(channel, page)
    }
    return page
  }

  async function fetchOlder(channel: string): Promise<void> {
    const before = timeline(channel).oldestSeq()
    const query = before === undefined ? { limit: PAGE } : { limit: PAGE, before_seq: before }
    const asked = epoch
    const { data } = await session.api.GET('/api/v1/channels/{id}/messages', { params: { path: { id: channel }, query } })
    if (asked !== epoch) return
    for (const message of data?.messages ?? []) {
      names[message.sender.id] = message.sender.username
      timeline(channel).store(message)
      receipts.apply(channel, message.sender.id, Number(message.seq))
    }
    hasOlder[channel] = data?.has_more ?? false
    touch()
  }

  /** The user read a channel on another device: read here too once it is read to its end. */
  function readElsewhere(id: string, seq: number): void {
    const channel = channels.value.find((c) => c.id === id)
    if (!channel) return
    channel.last_read_seq = Math.max(Number(channel.last_read_seq ?? 0), seq)
    if (seq >= Number(channel.last_seq)) channel.unread_count = 0
  }

  function markRead(channel: Channel): void {
    channel.unread_count = 0
    const seq = Number(channel.last_seq)
    if (seq > Number(channel.last_read_seq ?? 0)) {
      channel.last_read_seq = seq
      connection.value?.notify({ type: 'message.read', payload: { channel_id: channel.id, seq } })
    }
  }

  /** The message the one being written answers, if any. */
  const replyTo = ref<MessageView | null>(null)

  function find(messageId: string): MessageView | undefined {
    void version.value
    return current.value ? timeline(current.value).find(messageId) : undefined
  }

  /** Sends `content` (with uploads, as a reply); a retry passes the failed send's `clientId`. */
  function send(content: string, options: { clientId?: string; attachments?: string[]; reply?: string } = {}): void {
    const channel = current.value
    const live = connection.value
    const { clientId, attachments = [], reply } = options
    if (!channel || !live || (!content.trim() && attachments.length === 0)) return
    const payload = {
      channel_id: channel,
      content,
      ...(attachments.length ? { attachments } : {}),
      ...(reply ? { reply_to: reply } : {}),
    }
    const { clientId: id, acked } = live.send(payload, clientId)
    timeline(channel).sending(id, content, attachments, reply)
    touch()
    acked.then(
      () => {
        timeline(channel).acked(id)
        touch()
      },
      (error: unknown) => {
        timeline(channel).failed(id, error instanceof SendRefused ? error.error.message : String(error))
        touch()
      },
    )
  }

  /** Edits, deletes or reacts to a stored message of the open channel. */
  function change(type: 'message.edit' | 'message.delete' | 'reaction.add' | 'reaction.remove', message_id: string, extra: { content?: string; emoji?: string } = {}): void {
    const channel = current.value
    if (!channel) return
    connection.value?.change({ type, payload: { channel_id: channel, message_id, ...extra } } as never)
  }

  /** The user is typing in the open channel: told at most every 3 s (the server's rule). */
  function typed(): void {
    const now = Date.now()
    if (!current.value || now - typedAt < 3000) return
    typedAt = now
    connection.value?.notify({ type: 'typing.start', payload: { channel_id: current.value } })
  }

  const typingNow = computed(() => (current.value ? (typing[current.value] ?? []).map((id) => names[id] ?? 'Someone') : []))

  /** Sends a failed message again, with its first `client_id`: stored at most once. */
  function retry(clientId: string): void {
    const channel = current.value
    const again = channel ? timeline(channel).retry(clientId) : undefined
    if (again) {
      touch()
      send(again.content, { clientId: again.clientId, attachments: again.attachments, reply: again.reply })
    }
  }

  async function openDm(userId: string): Promise<void> {
    const { data } = await session.api.POST('/api/v1/channels', { body: { type: 'dm', member_ids: [userId] } })
    if (!data) return
    await refreshChannels()
    connection.value?.seqs.start(data.id, 0)
    await open(data.id)
  }

  /** Public channels whose name contains `q`, with whether the user is in each. */
  async function browse(q: string): Promise<Channel[]> {
    const query = q.trim() ? { q: q.trim(), limit: 50 } : { limit: 50 }
    const { data } = await session.api.GET('/api/v1/channels/public', { params: { query } })
    return data?.channels ?? []
  }

  async function join(channel: string): Promise<void> {
    const { data } = await session.api.POST('/api/v1/channels/{id}/join', { params: { path: { id: channel } } })
    if (!data) return
    await refreshChannels()
    connection.value?.seqs.start(channel, Number(data.last_seq))
    await open(channel)
  }

  /** Sets the user's notification preferences for a channel (`null`: the default, not muted). */
  async function setNotifications(
    channel: string,
    body: { level: 'all' | 'mentions' | 'none' | null; muted_until: string | null },
  ): Promise<void> {
    const { data } = await session.api.PUT('/api/v1/channels/{id}/notifications', { params: { path: { id: channel } }, body })
    const row = channels.value.find((c) => c.id === channel)
    if (data && row) Object.assign(row, { notify_level: data.default ? null : data.level, muted_until: data.muted_until ?? null })
  }

  async function createGroup(name: string, kind: 'group' | 'public'): Promise<void> {
    const { data } = await session.api.POST('/api/v1/channels', { body: { type: kind, name } })
    if (!data) return
    await refreshChannels()
    await open(data.id)
  }

  return {
    channels, ordered, current, currentChannel, status, entries, hasOlder, change, typed, typingNow,
    browse, join, replyTo, find, me,
    start, stop, open, loadOlder, send, retry, openDm, createGroup, setNotifications,
  }
})
