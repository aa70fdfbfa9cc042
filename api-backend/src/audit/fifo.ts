/**
 * A first-in first-out queue with cheap removal from the front (an array and a head index, compacted
 * now and then), for the audit's pending records: the writer reads a batch from the front, and
 * removes it only once the database has it.
 */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Up to `count` items from the front, left in place. */
  peek(count: number): T[] {
    return this.items.slice(this.head, this.head + count);
  }

  /** Removes up to `count` items from the front. */
  shift(count: number): void {
    this.head = Math.min(this.items.length, this.head + count);
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
