-- Session audit: who (hashed), when, how much. Never a prompt, an answer, a token or a raw user id.
--
-- Rows are written by api-backend's audit writer, in batches that may be retried after a lost
-- reply; every write is therefore an upsert on a natural key, so applying a fact twice changes
-- nothing. Timestamps are the moment the fact happened (sent by api-backend), not the moment the
-- row was written, which may be later when the database was away.

-- One row per streaming-proxy instance: created when the manager starts it, closed when it stops.
CREATE TABLE proxy_sessions (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- First 16 hex chars of SHA-256(user id): the same hash as in logs and Docker names.
  owner_hash   text        NOT NULL CHECK (owner_hash ~ '^[0-9a-f]{16}$'),
  -- pid (process driver) or container id (docker driver).
  proxy_id     text        NOT NULL,
  driver       text        NOT NULL,
  started_at   timestamptz,
  stopped_at   timestamptz,
  stop_reason  text        CHECK (stop_reason IN ('user', 'idle', 'error', 'shutdown')),
  sort_at      timestamptz GENERATED ALWAYS AS (COALESCE(started_at, stopped_at)) STORED,
  CHECK (started_at IS NOT NULL OR stopped_at IS NOT NULL),
  -- A pid comes back one day; a pid with its start time does not.
  UNIQUE (owner_hash, proxy_id, started_at)
);
CREATE INDEX proxy_sessions_owner_recent ON proxy_sessions (owner_hash, sort_at DESC, id DESC);
CREATE INDEX proxy_sessions_open ON proxy_sessions (owner_hash) WHERE stopped_at IS NULL;

-- One row per desktop connection (a bridge's WebSocket or long-poll registration) to a proxy.
CREATE TABLE tunnel_sessions (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  owner_hash         text        NOT NULL CHECK (owner_hash ~ '^[0-9a-f]{16}$'),
  proxy_id           text        NOT NULL,
  proxy_started_at   timestamptz NOT NULL,
  -- The proxy's own id of the connection (t0, t1, ...), unique within one proxy instance.
  link_id            text        NOT NULL,
  transport          text        NOT NULL CHECK (transport IN ('ws', 'poll')),
  -- The bridge's name and version (e.g. ctll-bridge/0.1.0), nothing more about the machine.
  client             text,
  connected_at       timestamptz,
  disconnected_at    timestamptz,
  -- NULL: unknown (the connection was cut by its proxy stopping before it could report counts).
  requests           bigint      CHECK (requests >= 0),
  bytes_to_desktop   bigint      CHECK (bytes_to_desktop >= 0),
  bytes_from_desktop bigint      CHECK (bytes_from_desktop >= 0),
  close_reason       text,
  sort_at            timestamptz GENERATED ALWAYS AS (COALESCE(connected_at, disconnected_at)) STORED,
  CHECK (connected_at IS NOT NULL OR disconnected_at IS NOT NULL),
  UNIQUE (owner_hash, proxy_id, proxy_started_at, link_id)
);
CREATE INDEX tunnel_sessions_owner_recent ON tunnel_sessions (owner_hash, sort_at DESC, id DESC);
CREATE INDEX tunnel_sessions_open ON tunnel_sessions (owner_hash) WHERE disconnected_at IS NULL;
