-- Relay keys: long-lived credentials a user makes for a script (`call`) or a headless bridge
-- (`bridge`). The key itself is shown once, when it is made; only its SHA-256 is kept, so a copy of
-- this table lets no one use a key.
--
-- Unlike the audit tables this one holds the user id (the `sub` of the token that made the key) in
-- clear: a key must resolve to the user it acts for, and a hash cannot be turned back into one.
-- A revoked key's row is deleted.
CREATE TABLE relay_keys (
  id           uuid        PRIMARY KEY,
  user_id      text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 256),
  -- Hex SHA-256 of the whole key (prefix included).
  key_hash     text        NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  scope        text        NOT NULL CHECK (scope IN ('bridge', 'call')),
  created_at   timestamptz NOT NULL,
  -- NULL: the key does not expire.
  expires_at   timestamptz,
  -- Written by the audit writer, at most about once a minute per key and api-backend.
  last_used_at timestamptz
);
CREATE INDEX relay_keys_user ON relay_keys (user_id, created_at);
