-- zrok shares a user's desktop offers (api-backend/src/zrok/registry.ts). In the database rather than
-- in one api-backend's memory so that every replica knows every share: a desktop may register through
-- one replica and its proxy discover through another.
--
-- A share lives while its desktop heartbeats: each beat moves expires_at one TTL ahead. Reads ignore
-- rows past expires_at; the registry's sweep deletes them. Owners appear as their 16-hex hash only.
-- share_token is a credential the owner gave us to hand back to them; it is never logged.
CREATE TABLE zrok_shares (
  tunnel_id         text        PRIMARY KEY CHECK (tunnel_id ~ '^zt[0-9a-f]{24}$'),
  owner_hash        text        NOT NULL CHECK (owner_hash ~ '^[0-9a-f]{16}$'),
  public_url        text        NOT NULL,
  local_url         text,
  share_token       text,
  registered_at     timestamptz NOT NULL,
  last_heartbeat_at timestamptz NOT NULL,
  expires_at        timestamptz NOT NULL,
  -- The same URL from the same owner is one share (registering it again refreshes it).
  UNIQUE (owner_hash, public_url)
);
CREATE INDEX zrok_shares_expiry ON zrok_shares (expires_at);
