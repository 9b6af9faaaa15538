-- The worker's persist of a batch as one function, called as one autocommitted statement: one
-- round trip per batch where `BEGIN`, the lock, the insert and `COMMIT` took four. Under load
-- the worker's transactions spent about half their time "idle in transaction", Postgres
-- waiting for the worker's next statement (docs/benchmarks.md, session 9).
--
-- What it does is what `messages::persist` did statement by statement:
-- * the batch's channels are locked first, in id order (a second worker of the same partition,
--   during a redelivery or a rolling restart, waits here; the insert below then takes a new
--   snapshot, as every statement of a plpgsql function does under READ COMMITTED, and sees
--   what the other committed);
-- * every message not stored yet gets its channel's next contiguous `seq` and `ordinal`, the
--   channel's `last_seq` and `message_count` move on, and each sender's read position moves
--   past their own last message (never backwards);
-- * the rows stored are returned (`fresh`), then, when some of the batch was stored before,
--   every stored row of the batch (`fresh` false; the caller keeps the fresh copy of a row
--   returned twice).
-- Messages of channels that no longer exist are dropped.
CREATE FUNCTION chat_persist_batch(
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
