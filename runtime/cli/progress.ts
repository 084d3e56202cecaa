/**
 * Progress of a long-running command on a terminal: one line on stderr, rewritten in place.
 * When stderr is not a terminal (piped, redirected, CI) it prints nothing, so logs and scripts
 * see only the command's results.
 */
export class Progress {
  readonly #tty: boolean;
  #shown = false;
  #last = 0;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.#tty = stream.isTTY === true;
  }

  /** True on a terminal, where progress is shown. */
  get active(): boolean {
    return this.#tty;
  }

  /** Shows `text` in place of the last progress line (at most ten times a second, unless `force`). */
  update(text: string, force = false): void {
    if (!this.#tty) return;
    const now = performance.now();
    if (!force && now - this.#last < 100) return;
    this.#last = now;
    this.stream.write(`\r\x1b[K${text}`);
    this.#shown = true;
  }

  /** Clears the progress line (before the command prints its result). */
  done(): void {
    if (!this.#shown) return;
    this.stream.write("\r\x1b[K");
    this.#shown = false;
  }
}
