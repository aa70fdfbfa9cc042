-- Which credential opened a tunnel session: the id of the relay key, NULL for the user's own
-- token (or a session whose opening was reconstructed from the proxy's status). An id, never the
-- key; it stays after the key is revoked, so the history still says a key was used.
ALTER TABLE tunnel_sessions ADD COLUMN key_id uuid;
