/**
 * What one user may take of the relay. The proxy serves a single user and every api-backend
 * replica forwards that user's traffic here, so counting in this process bounds the user as a
 * whole, not per replica:
 *
 * - a token bucket for what the user starts (relayed requests and new desktop links): bursts of
 *   USER_RATE_BURST, refilled at USER_RATE_PER_MINUTE;
 * - USER_MAX_STREAMS requests relayed at once, over every link and share;
 * - USER_MAX_WS_LINKS WebSocket tunnels and USER_MAX_POLL_LINKS polling bridges at once;
 * - MAX_BODY_BYTES of request body.
 *
 * Each refusal is an error of the catalogue whose Retry-After says when trying again can work.
 */
import { TokenBucket } from 'limiter';
import { PayloadTooLargeError, RateLimitedError, type RelayError } from '@ctll/protocol';
import type { UserLimitSettings } from '../config';
import type { Transport } from '../tunnel/desktop-link';

export interface LinkTimings {
  /** A WebSocket that died unseen is dropped within two ping intervals, freeing its slot. */
  pingIntervalMs: number;
  /** A polling bridge that went away is dropped after the grace period, freeing its slot. */
  pollGraceMs: number;
}

export class UserLimits {
  private readonly bucket: TokenBucket;
  private streams = 0;

  constructor(
    private readonly settings: UserLimitSettings,
    private readonly timings: LinkTimings,
  ) {
    this.bucket = new TokenBucket({ bucketSize: settings.rateBurst, tokensPerInterval: settings.ratePerMinute, interval: 'minute' });
    // The library starts a bucket empty; a user who has done nothing yet may burst at once.
    this.bucket.content = settings.rateBurst;
  }

  /**
   * Admits one relayed request (a stream of the frame link, upstream/), or says why not. An
   * admitted request holds a stream slot until the caller calls releaseStream(), once, when the
   * stream is over.
   */
  admitStream(declaredBytes: number): RelayError | undefined {
    if (declaredBytes > this.settings.maxBodyBytes) return this.tooLarge();
    const limited = this.takeToken();
    if (limited) return limited;
    if (this.streams >= this.settings.maxStreams) {
      return new RateLimitedError(`at most ${this.settings.maxStreams} requests at once for your desktop; wait for one to finish`, {
        code: 'too_many_streams',
        retryAfterSeconds: 1,
      });
    }
    this.streams += 1;
    return undefined;
  }

  releaseStream(): void {
    this.streams -= 1;
  }

  /** MAX_BODY_BYTES, for counting a body that arrives as frames. */
  get maxBodyBytes(): number {
    return this.settings.maxBodyBytes;
  }

  tooLargeError(): PayloadTooLargeError {
    return this.tooLarge();
  }

  /** Admits one more desktop link of `transport` while `open` of that kind are open, or says why not. */
  admitLink(transport: Transport, open: number): RelayError | undefined {
    const limited = this.takeToken();
    if (limited) return limited;
    const max = transport === 'ws' ? this.settings.maxWsLinks : this.settings.maxPollLinks;
    if (open < max) return undefined;
    const what = transport === 'ws' ? 'WebSocket tunnels' : 'polling bridges';
    const freedWithinMs = transport === 'ws' ? 2 * this.timings.pingIntervalMs : this.timings.pollGraceMs;
    return new RateLimitedError(`at most ${max} ${what} at once per user; close one, or wait for a lost one to be dropped`, {
      code: 'too_many_links',
      retryAfterSeconds: Math.ceil(freedWithinMs / 1000),
    });
  }

  private takeToken(): RateLimitedError | undefined {
    if (this.bucket.tryRemoveTokens(1)) return undefined;
    const waitMs = this.bucket.getWaitTime(1);
    const { ratePerMinute, rateBurst } = this.settings;
    return new RateLimitedError(`too many requests: at most ${ratePerMinute} a minute, in bursts of up to ${rateBurst}`, {
      retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
    });
  }

  private tooLarge(): PayloadTooLargeError {
    return new PayloadTooLargeError(`the request body exceeds ${this.settings.maxBodyBytes} bytes`);
  }
}
