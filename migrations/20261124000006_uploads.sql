-- Uploads: the files users send (`POST /api/v1/upload`). The bytes live in the object store
-- under `uploads/<id>`; this row says whose they are and what they are (the type sniffed from
-- the content, never taken from the client).
CREATE TABLE uploads (
    id           uuid PRIMARY KEY,
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type text NOT NULL,
    size         bigint NOT NULL CHECK (size > 0),
    -- Set for images only.
    width        integer,
    height       integer,
    filename     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Deleted by its owner: the bytes are gone, messages that carried it keep the description.
    deleted_at   timestamptz
);
CREATE INDEX uploads_owner ON uploads (owner_id, created_at DESC);

-- A message's attachments as sent (`[{id, url, content_type, size, width, height,
-- filename}]`), NULL without any, and again NULL once the message is deleted. Who may read an
-- upload: its owner, and the members of a channel with a message that carries it, found by
-- this index.
ALTER TABLE messages ADD COLUMN attachments jsonb;
CREATE INDEX messages_attachments ON messages USING gin (attachments jsonb_path_ops)
    WHERE attachments IS NOT NULL;
