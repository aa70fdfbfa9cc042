-- Security-relevant events, append-only: failed authentication by reason, attempts on another
-- user's tunnel, rate-limit hits. The id is made by api-backend when the event happens, so a
-- retried batch inserts nothing twice. Users appear only as hashes; tokens never appear.
CREATE TABLE security_events (
  id          uuid        PRIMARY KEY,
  at          timestamptz NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('auth_failure', 'cross_user', 'rate_limited')),
  -- auth_failure: why the token was refused (credentials_required, invalid_token, ...);
  -- cross_user: forbidden; rate_limited: the HTTP status answered (429).
  reason      text        NOT NULL,
  -- The caller, when a valid token said who it is.
  owner_hash  text        CHECK (owner_hash ~ '^[0-9a-f]{16}$'),
  -- cross_user: whose tunnel the caller asked for.
  target_hash text        CHECK (target_hash ~ '^[0-9a-f]{16}$'),
  -- The route pattern (e.g. /api/tunnel/:userId/*), never the raw path, which may hold a user id.
  route       text
);
CREATE INDEX security_events_at ON security_events (at DESC);
CREATE INDEX security_events_owner ON security_events (owner_hash, at DESC) WHERE owner_hash IS NOT NULL;

-- Append-only in fact, not only by convention. Retention is an operator's decision, made
-- deliberately: ALTER TABLE security_events DISABLE TRIGGER security_events_append_only.
CREATE FUNCTION security_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'security_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER security_events_append_only
  BEFORE UPDATE OR DELETE ON security_events
  FOR EACH ROW EXECUTE FUNCTION security_events_refuse_change();
