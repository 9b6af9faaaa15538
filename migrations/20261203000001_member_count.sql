-- Members per channel, kept by statement triggers on channel_members (one update of the
-- channel's row per statement, however many members it adds or removes). Presence uses it to
-- leave out the channels too large to tell every member of every transition
-- (`gateway.presence_max_members`).
--
-- channel_members is locked first, so no insert or delete runs between the backfill and the
-- triggers: one waiting for the lock sees the triggers when it gets it.
LOCK TABLE channel_members IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE channels ADD COLUMN member_count integer NOT NULL DEFAULT 0;

UPDATE channels c SET member_count = m.n
FROM (SELECT channel_id, count(*)::integer AS n FROM channel_members GROUP BY channel_id) m
WHERE c.id = m.channel_id;

CREATE FUNCTION channel_members_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE channels c SET member_count = c.member_count + a.n
    FROM (SELECT channel_id, count(*)::integer AS n FROM added GROUP BY channel_id) a
    WHERE c.id = a.channel_id;
    RETURN NULL;
END
$$;

CREATE FUNCTION channel_members_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE channels c SET member_count = c.member_count - r.n
    FROM (SELECT channel_id, count(*)::integer AS n FROM removed GROUP BY channel_id) r
    WHERE c.id = r.channel_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER channel_members_count_added AFTER INSERT ON channel_members
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION channel_members_added();
CREATE TRIGGER channel_members_count_removed AFTER DELETE ON channel_members
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION channel_members_removed();
