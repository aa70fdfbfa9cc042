-- Each user's proxy starts in the current minute (PROXY_START_RATE_PER_MINUTE), shared by every
-- api-backend replica on this database (api-backend/src/proxy/start-budget.ts). The shape is the one
-- rate-limiter-flexible's RateLimiterPostgres reads and writes: key is "proxy-start:<owner hash>",
-- points the starts counted, expire the end of the window in epoch milliseconds. The library
-- deletes rows expired an hour ago; the index keeps that cheap. Unused with PGlite (the budget is
-- counted in memory there).
CREATE TABLE proxy_start_budget (
  key    varchar(255) PRIMARY KEY,
  points integer      NOT NULL DEFAULT 0,
  expire bigint
);
CREATE INDEX proxy_start_budget_expire ON proxy_start_budget (expire);
