-- Read receipts: each member's read position in a channel (a `seq`; it never moves
-- backwards). A channel's unread count is `last_seq - last_read_seq`: no count over history.
-- A member starts with what was there when they joined read: joining shows history, not a
-- wall of unread messages.

ALTER TABLE channel_members
    ADD COLUMN last_read_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_read_at  timestamptz;

UPDATE channel_members m SET last_read_seq = c.last_seq FROM channels c WHERE c.id = m.channel_id;

CREATE FUNCTION channel_members_start_read() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_read_seq := (SELECT last_seq FROM channels WHERE id = NEW.channel_id);
    RETURN NEW;
END $$;

CREATE TRIGGER channel_members_start_read BEFORE INSERT ON channel_members
    FOR EACH ROW EXECUTE FUNCTION channel_members_start_read();
