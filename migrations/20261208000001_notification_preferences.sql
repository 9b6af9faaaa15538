-- Each member's notification preference for a channel: `all`, `mentions` or `none`; NULL is
-- the channel kind's default (a dm: all; a group or public channel: mentions). `muted_until`
-- silences the channel until then, whatever the level. The notifier reads both; clients show
-- a muted channel without its unread badge.
ALTER TABLE channel_members
    ADD COLUMN notify_level text CHECK (notify_level IN ('all', 'mentions', 'none')),
    ADD COLUMN muted_until  timestamptz;
