-- What lets gateways sweep uploads that are of no use, without scanning every upload:
-- * `attached_at`, set by the gateway that accepts the first message carrying the upload;
--   uploads never attached are deleted `uploads.unattached_ttl` after they were stored (the
--   sweeper still checks `messages` before deleting, for rows written by gateways older than
--   this column).
-- * `upload_intents`: a row per upload in progress, written before its first byte is stored
--   and removed with the insert of its `uploads` row. One left behind (its request dropped, its
--   gateway killed) names a file in the store that no row describes: the sweeper deletes it.
ALTER TABLE uploads ADD COLUMN attached_at timestamptz;
UPDATE uploads u SET attached_at = u.created_at
 WHERE EXISTS (SELECT 1 FROM messages m
                WHERE m.attachments IS NOT NULL
                  AND m.attachments @> jsonb_build_array(jsonb_build_object('id', u.id::text)));
CREATE INDEX uploads_unattached ON uploads (created_at)
    WHERE attached_at IS NULL AND deleted_at IS NULL;

-- Quota: bytes per owner, summed over the owner's uploads that are not deleted.
CREATE INDEX uploads_owner_live ON uploads (owner_id) INCLUDE (size) WHERE deleted_at IS NULL;

CREATE TABLE upload_intents (
    id         uuid PRIMARY KEY,
    owner_id   uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX upload_intents_created ON upload_intents (created_at);
