-- Full-text search over message content. The `simple` configuration lowercases and splits
-- words without stemming or stop words, so it treats every language alike (a chat is rarely
-- in one language); `websearch_to_tsquery` reads the query ("quoted phrases", or, -not).
-- Deleted messages have empty content and so match nothing.
ALTER TABLE messages
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED;
CREATE INDEX messages_search ON messages USING gin (search);
