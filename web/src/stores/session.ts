/**
 * The session: the access token in memory only, the refresh token in `localStorage` (so a
 * reload stays logged in), each refresh token used once (the server rotates them and revokes a
 * session whose token is used twice, so tabs refresh in turn), the access token refreshed
 * before it expires.
 */
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { createApi } from '../api/client'
import type { components } from '../api/schema'

type User = components['schemas']['User']
type Session = components['schemas']['Session']

const REFRESH_KEY = 'chat.refresh_token'

export const useSession = defineStore('session', () => {
  const user = ref<User | null>(null)
  const error = ref<string | null>(null)
  let access: string | null = null
  let timer: ReturnType<typeof setTimeout> | null = null
  let refreshing: Promise<string | null> | null = null

  const api = createApi({ access: () => access, refresh: () => refresh() })

  function adopt(session: Session): string {
    access = session.access_token
    localStorage.setItem(REFRESH_KEY, session.refresh_token)
    if (session.user) user.value = session.user
    if (timer) clearTimeout(timer)
    // A minute before it expires, or halfway through a short lifetime.
    const lead = Math.min(60, session.expires_in / 2)
    timer = setTimeout(() => void refresh(), (session.expires_in - lead) * 1000)
    return session.access_token
  }

  function end(): void {
    access = null
    user.value = null
    localStorage.removeItem(REFRESH_KEY)
    if (timer) clearTimeout(timer)
  }

  /**
   * A new access token from the stored refresh token; null (and logged out) when it is refused.
   * Tabs share the refresh token, and one used twice revokes the session: refreshes of all tabs
   * take turns (a Web Lock), each reading the token the one before it stored.
   */
  function refresh(): Promise<string | null> {
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined
    const turn = locks
      ? new Promise<string | null>((resolve, reject) => {
          // The lock is held until the refresh settles: the callback returns its promise.
          void locks.request('chat.session.refresh', () => refreshNow().then(resolve, reject))
        })
      : refreshNow()
    const running = (refreshing ??= turn.finally(() => (refreshing = null)))
    return running
  }

  async function refreshNow(): Promise<string | null> {
    const refresh_token = localStorage.getItem(REFRESH_KEY)
    if (!refresh_token) return null
    const { data } = await api.POST('/api/v1/auth/refresh', { body: { refresh_token } })
    if (!data) {
      end()
      return null
    }
    const token = adopt(data)
    if (!user.value) user.value = (await api.GET('/api/v1/users/me')).data ?? null
    return token
  }

  async function login(login: string, password: string): Promise<boolean> {
    const body = login.includes('@') ? { email: login, password } : { username: login, password }
    const { data, error: failed } = await api.POST('/api/v1/auth/login', { body })
    error.value = failed ? failed.error.message : null
    if (data) adopt(data)
    return !!data
  }

  async function register(username: string, email: string, password: string): Promise<boolean> {
    const { data, error: failed } = await api.POST('/api/v1/auth/register', { body: { username, email, password } })
    error.value = failed ? failed.error.message : null
    if (data) adopt(data)
    return !!data
  }

  async function logout(): Promise<void> {
    const refresh_token = localStorage.getItem(REFRESH_KEY)
    if (refresh_token) await api.POST('/api/v1/auth/logout', { body: { refresh_token } })
    end()
  }

  return { user, error, api, token: () => access, refresh, login, register, logout }
})
