-- Revoked sessions are looked up by time at gateway start (their access tokens may still be
-- unexpired); deleted accounts keep their rows (their messages stay) but cannot log in.

CREATE INDEX refresh_tokens_revoked ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
