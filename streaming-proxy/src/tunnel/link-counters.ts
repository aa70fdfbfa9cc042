/** Per-link traffic counts for the audit: plain numbers, bumped on the hot path, read at close. */
export class LinkCounters {
  requests = 0;
  bytesToDesktop = 0;
  bytesFromDesktop = 0;
}
