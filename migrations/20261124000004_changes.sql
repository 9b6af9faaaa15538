-- Messages that change: edits, deletes and reactions go through the stream like sends and
-- take the next `seq` of their channel. `channel_events` is the log of those changes (the
-- frame every member was sent, with its `seq`), so a `sync` replays new messages and changes
-- in the one order everybody saw; `messages` and `reactions` keep the current state.

ALTER TABLE messages
    ADD COLUMN edited_at        timestamptz,
    ADD COLUMN deleted_at       timestamptz,
    ADD COLUMN mentions         uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN mentions_channel boolean NOT NULL DEFAULT false,
    -- 1, 2, 3… over the channel's messages only (changes take `seq`s too): unread counts are
    -- `message_count - ordinal of the last message read`, one index lookup, no count.
    ADD COLUMN ordinal          bigint;

UPDATE messages SET ordinal = seq;
ALTER TABLE messages ALTER COLUMN ordinal SET NOT NULL;

ALTER TABLE channels ADD COLUMN message_count bigint NOT NULL DEFAULT 0;
UPDATE channels SET message_count = last_seq;

-- A writer that does not know of ordinals (a worker of the previous release, during a rolling
-- deploy) still stores its messages: each gets the channel's next one here. Workers of this
-- release number their batch themselves. (Deploy workers before gateways: an old worker
-- dead-letters the changes it cannot read.)
CREATE FUNCTION messages_ordinal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ordinal IS NULL THEN
        UPDATE channels SET message_count = message_count + 1 WHERE id = NEW.channel_id
            RETURNING message_count INTO NEW.ordinal;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER messages_ordinal BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_ordinal();

CREATE TABLE reactions (
    message_id bigint NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
    emoji      text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- One reaction per user per emoji.
    PRIMARY KEY (message_id, emoji, user_id)
);

CREATE TABLE channel_events (
    channel_id    uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    -- NULL for a change that changed nothing (a second delete, a reaction already there):
    -- kept so a redelivery of it is recognised, but it takes no `seq` and is sent to no one.
    seq           bigint,
    kind          text NOT NULL CHECK (kind IN ('edit', 'delete', 'reaction_add', 'reaction_remove')),
    message_id    bigint NOT NULL,
    actor_id      uuid NOT NULL REFERENCES users (id),
    client_msg_id text NOT NULL,
    -- The frame sent to the channel's members (`message.updated`, `message.deleted`,
    -- `reaction.updated`), as sent.
    frame         jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT channel_events_channel_seq_key UNIQUE (channel_id, seq),
    CONSTRAINT channel_events_idempotency_key UNIQUE (channel_id, actor_id, client_msg_id)
);
