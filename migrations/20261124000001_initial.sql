-- Users, channels, memberships, messages and refresh tokens of one chat cell.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    username      text NOT NULL,
    password_hash text NOT NULL,
    display_name  text NOT NULL,
    avatar_url    text,
    status        text NOT NULL DEFAULT 'offline',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE INDEX users_username_prefix ON users (lower(username) text_pattern_ops);

CREATE TABLE channels (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('dm', 'group', 'public')),
    name        text,
    description text,
    creator_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    -- "<lower user id>:<higher user id>" for dm channels, so a dm is found, not created twice.
    dm_key      text UNIQUE,
    -- Highest seq given to a message of this channel; workers bump it under a row lock.
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE channel_members (
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX channel_members_user ON channel_members (user_id);

CREATE TABLE messages (
    message_id    bigint PRIMARY KEY,
    channel_id    uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    sender_id     uuid NOT NULL REFERENCES users (id),
    client_msg_id text NOT NULL,
    content       text NOT NULL,
    content_type  text NOT NULL DEFAULT 'text',
    reply_to      bigint,
    created_at    timestamptz NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_channel_seq_key UNIQUE (channel_id, seq),
    CONSTRAINT messages_idempotency_key UNIQUE (channel_id, sender_id, client_msg_id)
);

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- All tokens rotated from one login; reuse of a rotated token revokes the family.
    family_id  uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
