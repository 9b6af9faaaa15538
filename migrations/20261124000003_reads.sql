-- Read receipts: each member's read position in a channel (a `seq`; it never moves
-- backwards). A channel's unread count is `last_seq - last_read_seq`: no count over history.

ALTER TABLE channel_members
    ADD COLUMN last_read_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_read_at  timestamptz;
