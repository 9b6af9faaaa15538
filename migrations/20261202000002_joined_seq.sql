-- The channel's last seq when the member joined. A socket that learns of a membership late
-- (its first send arrives before the membership change reached its gateway) catches up from
-- here: what the channel stored after the join is sent to it before the live messages.
-- Members from before this column count as joined at 0.
ALTER TABLE channel_members ADD COLUMN joined_seq bigint NOT NULL DEFAULT 0;
