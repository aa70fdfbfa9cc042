-- An operator may stop any user's proxy from the console (POST /api/admin/proxies/<h>/stop): its
-- stop is recorded like a user's, with its own reason. Widening the check breaks no older replica.
ALTER TABLE proxy_sessions DROP CONSTRAINT proxy_sessions_stop_reason_check;
ALTER TABLE proxy_sessions ADD CONSTRAINT proxy_sessions_stop_reason_check
  CHECK (stop_reason IN ('user', 'idle', 'error', 'shutdown', 'operator'));
