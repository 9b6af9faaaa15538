/**
 * What the client looks up over REST and keeps for the session: the other member of each dm
 * (a dm has no name of its own) and their presence, the members of channels (for mention
 * completion), and signed links of attachments (an `<img>` cannot send a token). Each is
 * fetched once, when first asked for; `clear()` drops them all when the user signs out, since
 * what one user may see is not the next one's.
 */
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import type { components } from '../api/schema'
import { useSession } from './session'

type Channel = components['schemas']['Channel']
type Member = { user_id: string; username: string; display_name: string }

export const useDirectory = defineStore('directory', () => {
  const session = useSession()
  const me = () => session.user?.id ?? ''
  /** The other member's name, for each dm. */
  const dmNames = reactive<Record<string, string>>({})
  /** The other member of each dm, for their presence. */
  const dmPeers = reactive<Record<string, string>>({})
  /** Who is online, away or offline, as `presence.update` says (channels of up to 250). */
  const presence = reactive<Record<string, string>>({})
  /** Members of each channel but the user, for mention suggestions. */
  const members = reactive<Record<string, Member[]>>({})
  /** Signed links of attachments, by upload id ('' while being fetched). */
  const links = reactive<Record<string, string>>({})
  /** Bumped by `clear()`: an answer asked for before it belongs to the session that ended. */
  let epoch = 0
  /** `then` for an answer of this session only. */
  const current = <T>(use: (value: T) => void) => {
    const asked = epoch
    return (value: T) => {
      if (asked === epoch) use(value)
    }
  }

  /** What a channel is called: its name, or for a dm the other member's. */
  function nameOf(channel: Channel): string {
    if (channel.type !== 'dm') return channel.name ?? ''
    if (!(channel.id in dmNames)) {
      dmNames[channel.id] = 'Direct message'
      void session.api
        .GET('/api/v1/channels/{id}/members', { params: { path: { id: channel.id }, query: { limit: 2 } } })
        .then(current(({ data }) => {
          const other = data?.members.find((m) => m.user_id !== me())
          if (!other) return
          dmNames[channel.id] = other.display_name
          dmPeers[channel.id] = other.user_id
          // Their presence now; `presence.update` tells its changes from here on.
          void session.api.GET('/api/v1/users/{id}', { params: { path: { id: other.user_id } } }).then(
            current(({ data: user }) => {
              if (user && !(other.user_id in presence)) presence[other.user_id] = user.status
            }),
          )
        }))
    }
    return dmNames[channel.id]!
  }

  /** The presence of a dm's other member ('' while not known). */
  const peerPresence = (channel: string) => presence[dmPeers[channel] ?? ''] ?? ''

  function membersOf(channel: string): Member[] {
    if (!(channel in members)) {
      members[channel] = []
      void session.api
        .GET('/api/v1/channels/{id}/members', { params: { path: { id: channel }, query: { limit: 500 } } })
        .then(current(({ data }) => void (members[channel] = (data?.members ?? []).filter((m) => m.user_id !== me()))))
    }
    return members[channel]!
  }

  function linkOf(upload: string): string | undefined {
    if (!(upload in links)) {
      links[upload] = ''
      void session.api.GET('/api/v1/upload/{id}/link', { params: { path: { id: upload } } }).then(
        current(({ data }) => {
          if (data) links[upload] = data.url
        }),
      )
    }
    return links[upload] || undefined
  }

  function clear(): void {
    epoch += 1
    for (const cache of [dmNames, dmPeers, presence, members, links]) {
      for (const key of Object.keys(cache)) delete (cache as Record<string, unknown>)[key]
    }
  }

  return { presence, nameOf, peerPresence, membersOf, linkOf, clear }
})
