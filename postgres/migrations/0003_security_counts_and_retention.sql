-- Security events counted per minute, and a retention window that the database itself enforces.
--
-- A refused-token flood used to write one row per request. api-backend now counts events in memory
-- per (source address, kind, reason, caller, target, route) and minute, and writes one row per
-- group when the minute closes: `at` is the start of that minute, `count` how many events it saw,
-- `last_at` the last of them. Rows written before this migration are single events (count 1).
ALTER TABLE security_events
  ADD COLUMN count   integer NOT NULL DEFAULT 1 CHECK (count >= 1),
  -- The client address as api-backend saw it (behind nginx: X-Forwarded-For per TRUST_PROXY), or
  -- 'other' for the group that collects addresses beyond the per-minute cap.
  ADD COLUMN source  text CHECK (length(source) <= 64),
  ADD COLUMN last_at timestamptz;

-- Retention. The audit tables refuse DELETE, except inside audit_prune(before), which refuses a
-- cutoff younger than a day and removes only rows that ended before its cutoff. So an ordinary
-- DELETE (a mistake, a hurried script) never removes a row, and no call removes the last day. The
-- table owner can still drop the triggers: that stays a deliberate act, visible in the schema.
CREATE FUNCTION audit_prune_cutoff() RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
  setting text := current_setting('ctll.audit_prune_before', true);
BEGIN
  IF setting IS NULL OR setting = '' OR setting::timestamptz > now() - interval '1 day' THEN
    RETURN NULL; -- not pruning, or a cutoff set by hand that would reach into the last day
  END IF;
  RETURN setting::timestamptz;
END;
$$;

-- security_events: still append-only (no UPDATE ever); DELETE only of rows older than the cutoff.
CREATE OR REPLACE FUNCTION security_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz := audit_prune_cutoff();
BEGIN
  IF TG_OP = 'DELETE' AND cutoff IS NOT NULL AND COALESCE(OLD.last_at, OLD.at) < cutoff THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'security_events is append-only (% refused; old rows go through audit_prune)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Session rows are updated while their session runs (its end arrives later), so only DELETE is refused.
CREATE FUNCTION audit_sessions_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz := audit_prune_cutoff();
  ended  timestamptz;
BEGIN
  IF TG_TABLE_NAME = 'proxy_sessions' THEN
    ended := GREATEST(OLD.started_at, OLD.stopped_at);
  ELSE
    ended := GREATEST(OLD.connected_at, OLD.disconnected_at);
  END IF;
  IF cutoff IS NOT NULL AND ended < cutoff THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% is append-only (DELETE refused; old rows go through audit_prune)', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER proxy_sessions_keep
  BEFORE DELETE ON proxy_sessions
  FOR EACH ROW EXECUTE FUNCTION audit_sessions_refuse_delete();
CREATE TRIGGER tunnel_sessions_keep
  BEFORE DELETE ON tunnel_sessions
  FOR EACH ROW EXECUTE FUNCTION audit_sessions_refuse_delete();

-- Removes every audit row that ended before `before` and says how many per table. A session still
-- open is kept until its start is older than the cutoff too (GREATEST skips the unknown end): one
-- whose stop was never recorded would otherwise stay forever.
CREATE FUNCTION audit_prune(before timestamptz)
  RETURNS TABLE (proxies bigint, tunnels bigint, security bigint)
  LANGUAGE plpgsql AS $$
DECLARE
  p bigint;
  t bigint;
  s bigint;
BEGIN
  IF before IS NULL OR before > now() - interval '1 day' THEN
    RAISE EXCEPTION 'audit_prune: the cutoff % is less than a day ago; the audit keeps at least its last day', before
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM set_config('ctll.audit_prune_before', before::text, true);
  DELETE FROM tunnel_sessions ts WHERE GREATEST(ts.connected_at, ts.disconnected_at) < before;
  GET DIAGNOSTICS t = ROW_COUNT;
  DELETE FROM proxy_sessions ps WHERE GREATEST(ps.started_at, ps.stopped_at) < before;
  GET DIAGNOSTICS p = ROW_COUNT;
  DELETE FROM security_events se WHERE COALESCE(se.last_at, se.at) < before;
  GET DIAGNOSTICS s = ROW_COUNT;
  PERFORM set_config('ctll.audit_prune_before', '', true);
  RETURN QUERY SELECT p, t, s;
END;
$$;
CREATE INDEX proxy_sessions_ended ON proxy_sessions ((GREATEST(started_at, stopped_at)));
CREATE INDEX tunnel_sessions_ended ON tunnel_sessions ((GREATEST(connected_at, disconnected_at)));
CREATE INDEX security_events_ended ON security_events ((COALESCE(last_at, at)));
