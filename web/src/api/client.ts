/**
 * The REST client, typed by the generated `schema.d.ts` (`openapi-fetch`): a path, method or
 * body the API does not have fails the type check. Every request carries the session's access
 * token; a bodiless one answered 401 is retried once after a refresh.
 */
import createClient, { type Middleware } from 'openapi-fetch'
import type { paths } from './schema'

export type Api = ReturnType<typeof createClient<paths>>

export interface TokenSource {
  access(): string | null
  /** A fresh access token, or null when the session is over. */
  refresh(): Promise<string | null>
}

export function createApi(tokens: TokenSource, baseUrl = ''): Api {
  const api = createClient<paths>({ baseUrl })
  const retried = new WeakSet<Request>()
  const auth: Middleware = {
    onRequest({ request }) {
      const token = tokens.access()
      if (token && !request.headers.has('Authorization')) request.headers.set('Authorization', `Bearer ${token}`)
      return request
    },
    async onResponse({ request, response }) {
      // Only bodiless requests are retried (a sent body cannot be read again); the session
      // refreshes before its token expires, so a 401 is rare to begin with.
      const bodiless = request.method === 'GET' || request.method === 'DELETE'
      if (response.status !== 401 || !bodiless || retried.has(request) || request.url.includes('/auth/')) return response
      const token = await tokens.refresh()
      if (!token) return response
      const again = new Request(request, { headers: new Headers(request.headers) })
      again.headers.set('Authorization', `Bearer ${token}`)
      retried.add(again)
      return fetch(again)
    },
  }
  api.use(auth)
  return api
}
