/**
 * The WebSocket frames of `docs/protocol.md` §6, as TypeScript types. The REST types are
 * generated from the OpenAPI document (`src/api/schema.d.ts`); the socket protocol is not in
 * that document, so its frames are written here, from the contract.
 */
import type { components } from '../api/schema'

/** A message as `message.new` and history carry it (the REST `MessageView`). */
export type MessageView = components['schemas']['MessageView']

/** The envelope of every frame. */
export interface Envelope<T extends string, P> {
  type: T
  id?: string
  payload: P
}

export type SendPayload = {
  channel_id: string
  content: string
  content_type?: 'text' | 'image' | 'file'
  reply_to?: string | null
  attachments?: string[]
}

/** The changes of a stored message (§6): each takes the channel's next `seq`, like a send. */
export type ChangeFrame =
  | Envelope<'message.edit', { channel_id: string; message_id: string; content: string }>
  | Envelope<'message.delete', { channel_id: string; message_id: string }>
  | Envelope<'reaction.add' | 'reaction.remove', { channel_id: string; message_id: string; emoji: string }>

/** Client → server. */
export type ClientFrame =
  | Envelope<'message.send', SendPayload>
  | ChangeFrame
  | Envelope<'sync', { channels: Record<string, number> }>
  | Envelope<'auth.refresh', { access_token: string }>
  | Envelope<'message.read', { channel_id: string; seq: number }>
  | Envelope<'typing.start', { channel_id: string }>
  | Envelope<'presence.set', { status: 'online' | 'away' }>

export type ErrorPayload = { code: string; retryable: boolean; message: string }

/** A change applied, in `seq` order with the channel's messages. */
export type ChangeApplied =
  | Envelope<'message.updated', { channel_id: string; seq: number; message_id: string; content: string; edited_at: string }>
  | Envelope<'message.deleted', { channel_id: string; seq: number; message_id: string }>
  | Envelope<
      'reaction.updated',
      { channel_id: string; seq: number; message_id: string; emoji: string; user_id: string; added: boolean; count: number }
    >

/** Server → client: the frames this module acts on, and the rest passed through as they are. */
export type ServerFrame =
  | ChangeApplied
  | Envelope<'message.ack', { status: 'stored'; message_id: string; channel_id: string }>
  | Envelope<'message.new', MessageView>
  | Envelope<'sync.done', { channel_id: string; last_seq: number; truncated: boolean }>
  | Envelope<'auth.refreshed', { expires_at: string }>
  | Envelope<'error', ErrorPayload>
  | Envelope<
      | 'change.rejected'
      | 'read.updated'
      | 'receipt.updated'
      | 'typing.update'
      | 'presence.update',
      Record<string, unknown>
    >

/** The subprotocol the server answers with; offered first, or browsers fail the handshake. */
export const SUBPROTOCOL = 'chat.v1'

/** Close codes after which a reconnect is pointless or needs something first (§6, close codes). */
export const CLOSE = {
  tokenExpired: 4001,
  sessionRevoked: 4003,
  slowConsumer: 4008,
  rateLimited: 4029,
  tooBig: 1009,
} as const
