/**
 * A bounded wait for a table to become empty (shutdown's grace). The table's owner holds one
 * and calls `emptied()` whenever the table becomes empty; the wait's timer is cleared on both
 * exits.
 */
export class EmptyWait {
  #resolve: (() => void) | null = null;

  /** Resolves at once when `empty`, else on the next `emptied()` or after `ms`. */
  async until(empty: boolean, ms: number): Promise<void> {
    if (empty || ms <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#resolve = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#resolve = null;
  }

  /** The table is empty now: ends a wait in progress. */
  emptied(): void {
    this.#resolve?.();
  }
}
