-- Which replica reports a proxy's unexpected exit (api-backend/src/proxy/exit-claims.ts). Every
-- api-backend replica sharing one engine sees the same container die; the one whose insert of its
-- container id lands reports it (error log, audit row, metric), the others stay quiet. Rows are
-- kept a day, far longer than any replica takes to hear of an exit, and then deleted.
CREATE TABLE proxy_exit_reports (
  exit_id     text        PRIMARY KEY,
  owner_hash  text        NOT NULL CHECK (owner_hash ~ '^[0-9a-f]{16}$'),
  reported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX proxy_exit_reports_age ON proxy_exit_reports (reported_at);
