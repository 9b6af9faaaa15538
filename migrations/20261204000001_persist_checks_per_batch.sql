-- The worker's persist without checks per row: the two foreign keys of `messages` and the
-- ordinal trigger each ran once per inserted row (the keys as a query per row, through SPI).
-- Measured with pgbench on 1,000-row batches (docs/benchmarks.md, session 16), the keys
-- took about a quarter of the statement. What they guaranteed stays guaranteed:
-- * the channel: `chat_persist_batch` locks the batch's channels first and inserts only
--   into channels that exist (messages of a channel that is gone are dropped, as before);
--   deleting a channel deletes its messages through the trigger below, as the key's
--   `ON DELETE CASCADE` did;
-- * the sender: checked once per batch, set-based, failing with the same SQLSTATE as the key
--   (23503), so the worker still persists such a batch one by one and dead-letters the
--   message it refuses;
-- * the ordinal: every writer of this release numbers its rows (the trigger was for the
--   workers of a release before it, during a rolling deploy).

DROP TRIGGER messages_ordinal ON messages;
DROP FUNCTION messages_ordinal();

ALTER TABLE messages DROP CONSTRAINT messages_channel_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_sender_id_fkey;

CREATE FUNCTION channels_delete_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages WHERE channel_id = OLD.id;
    RETURN OLD;
END $$;

CREATE TRIGGER channels_delete_messages AFTER DELETE ON channels
    FOR EACH ROW EXECUTE FUNCTION channels_delete_messages();

CREATE OR REPLACE FUNCTION chat_persist_batch(
    p_message_id bigint[], p_channel_id uuid[], p_sender_id uuid[], p_client_msg_id text[],
    p_content text[], p_content_type text[], p_reply_to bigint[], p_created_at timestamptz[],
    p_mentions text[], p_mentions_channel boolean[], p_attachments text[])
RETURNS TABLE (message_id bigint, channel_id uuid, seq bigint, sender_id uuid, client_msg_id text,
               content text, content_type text, attachments jsonb, reply_to bigint,
               created_at timestamptz, mentions uuid[], mentions_channel boolean,
               edited_at timestamptz, deleted boolean, fresh boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    stored_now bigint;
BEGIN
    -- Every sender is a user (accounts are never deleted, so no lock is needed): one
    -- set-based check for the batch, failing as the foreign key did.
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT s FROM unnest(p_sender_id) AS s) d
               WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = d.s)) THEN
        RAISE foreign_key_violation USING MESSAGE = 'a sender of the batch is not a user';
    END IF;

    PERFORM 1 FROM channels c WHERE c.id = ANY (p_channel_id) ORDER BY c.id FOR UPDATE;

    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_message_id, p_channel_id, p_sender_id, p_client_msg_id, p_content,
                             p_content_type, p_reply_to, p_created_at, p_mentions,
                             p_mentions_channel, p_attachments)
            WITH ORDINALITY AS t(message_id, channel_id, sender_id, client_msg_id, content,
                                 content_type, reply_to, created_at, mentions, mentions_channel,
                                 attachments, ord)
    ), fresh AS (
        SELECT DISTINCT ON (i.channel_id, i.sender_id, i.client_msg_id) i.*
        FROM input i JOIN channels c ON c.id = i.channel_id
        WHERE NOT EXISTS (
            SELECT 1 FROM messages m
            WHERE m.channel_id = i.channel_id AND m.sender_id = i.sender_id
              AND m.client_msg_id = i.client_msg_id)
        ORDER BY i.channel_id, i.sender_id, i.client_msg_id, i.ord
    ), numbered AS (
        SELECT f.*, row_number() OVER (PARTITION BY f.channel_id ORDER BY f.ord) AS rn FROM fresh f
    ), counts AS (
        SELECT n.channel_id, count(*) AS n FROM numbered n GROUP BY n.channel_id
    ), bumped AS (
        UPDATE channels c SET last_seq = c.last_seq + counts.n, message_count = c.message_count + counts.n
        FROM counts WHERE c.id = counts.channel_id
        RETURNING c.id, c.last_seq - counts.n AS base, c.message_count - counts.n AS ordinal_base
    ), inserted AS (
        INSERT INTO messages AS m (message_id, channel_id, seq, ordinal, sender_id, client_msg_id,
                                   content, content_type, reply_to, created_at, mentions,
                                   mentions_channel, attachments)
        SELECT n.message_id, n.channel_id, b.base + n.rn, b.ordinal_base + n.rn, n.sender_id,
               n.client_msg_id, n.content, n.content_type, n.reply_to, n.created_at,
               coalesce(string_to_array(nullif(n.mentions, ''), ',')::uuid[], '{}'),
               n.mentions_channel, nullif(n.attachments, '')::jsonb
        FROM numbered n JOIN bumped b ON b.id = n.channel_id
        ORDER BY n.channel_id, n.rn
        RETURNING m.message_id, m.channel_id, m.seq, m.sender_id, m.client_msg_id, m.content,
                  m.content_type, m.attachments, m.reply_to, m.created_at, m.mentions,
                  m.mentions_channel, m.edited_at, m.deleted_at IS NOT NULL AS deleted, true AS fresh
    ), own_read AS (
        UPDATE channel_members cm SET last_read_seq = r.seq, last_read_at = now()
        FROM (SELECT i.channel_id, i.sender_id, max(i.seq) AS seq
              FROM inserted i GROUP BY i.channel_id, i.sender_id) r
        WHERE cm.channel_id = r.channel_id AND cm.user_id = r.sender_id AND cm.last_read_seq < r.seq
    )
    SELECT * FROM inserted;
    GET DIAGNOSTICS stored_now = ROW_COUNT;

    IF stored_now < cardinality(p_message_id) THEN
        RETURN QUERY
        SELECT m.message_id, m.channel_id, m.seq, m.sender_id, m.client_msg_id, m.content,
               m.content_type, m.attachments, m.reply_to, m.created_at, m.mentions,
               m.mentions_channel, m.edited_at, m.deleted_at IS NOT NULL, false
        FROM unnest(p_channel_id, p_sender_id, p_client_msg_id) AS k(channel_id, sender_id, client_msg_id)
        JOIN messages m ON m.channel_id = k.channel_id AND m.sender_id = k.sender_id
                       AND m.client_msg_id = k.client_msg_id;
    END IF;
END
$$;
