import type { BodySender, ReceiveCredit } from '@ctll/protocol';

/**
 * One direction of a stream: bytes received on one peer's credit go on within the other peer's,
 * and the first peer's credit comes back only for bytes that went on, so a slow side holds the
 * fast one back instead of this proxy buffering for it.
 */
export class CreditHop {
  private held = 0;

  constructor(
    private readonly from: ReceiveCredit,
    private readonly to: BodySender,
    private readonly live: () => boolean,
  ) {}

  /** Bytes waiting for the far side's credit. */
  get holding(): number {
    return this.held;
  }

  forward(payload: Buffer): void {
    if (this.to.write(payload)) {
      this.from.consumed(payload.byteLength);
      return;
    }
    if (this.held === 0) {
      this.to.whenReady(() => {
        const bytes = this.held;
        this.held = 0;
        if (this.live()) this.from.consumed(bytes);
      });
    }
    this.held += payload.byteLength;
  }
}
