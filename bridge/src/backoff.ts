// The reconnect schedule is protocol's (one implementation for every package); kept here so the bridge's imports stay put.
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from '@ctll/protocol';
