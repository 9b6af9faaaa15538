-- The member-count triggers (20261203000001) lock the channels' rows in id order before they
-- update them, as the worker's persist_batch locks them: a statement that touches several
-- channels at once (a user deleted, leaving all of theirs) then cannot deadlock with a batch
-- that locks some of the same channels.
CREATE OR REPLACE FUNCTION channel_members_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM channels WHERE id IN (SELECT channel_id FROM added) ORDER BY id FOR NO KEY UPDATE;
    UPDATE channels c SET member_count = c.member_count + a.n
    FROM (SELECT channel_id, count(*)::integer AS n FROM added GROUP BY channel_id) a
    WHERE c.id = a.channel_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION channel_members_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM channels WHERE id IN (SELECT channel_id FROM removed) ORDER BY id FOR NO KEY UPDATE;
    UPDATE channels c SET member_count = c.member_count - r.n
    FROM (SELECT channel_id, count(*)::integer AS n FROM removed GROUP BY channel_id) r
    WHERE c.id = r.channel_id;
    RETURN NULL;
END
$$;
