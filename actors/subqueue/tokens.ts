/**
 * A rate-limited topic's lane asks the master for push tokens before it dispatches
 * (runtime/supervisor/rate-limiter.ts). Messages waiting for a token stay held, kept alive with
 * `working()`: no attempt is spent and AckWait never runs out while they wait.
 */
import type { Clock } from "../../runtime/clock.js";
import { decode, encode } from "../../runtime/codec/index.js";
import { errorText } from "../../runtime/errors.js";
import type { Logger } from "../../runtime/log.js";
import { NoRespondersError, type Rpc } from "../../runtime/nats/rpc.js";
import type { RateLimit } from "../../runtime/rules/store.js";
import type { TokenGrant, TokenRequest } from "../../runtime/supervisor/rate-limiter.js";

/** Tokens not used within this long are let go (another node's lane may need them), ms. */
const TOKEN_LIFE_MS = 1000;
const ASK_TIMEOUT_MS = 2000;
/** With no master answering, ask again this often, ms. */
const NO_MASTER_RETRY_MS = 500;

export class TokenGate {
  #tokens = 0;
  #grantedAt = 0;
  #asking = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #warned = false;

  constructor(
    private readonly subject: string,
    private readonly rpc: Rpc,
    /** The limit in force now (the rules bucket's, else the config's); null: none. */
    private readonly limit: () => RateLimit | null,
    /** Called when tokens came, or when it is time to ask again. */
    private readonly wake: () => void,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get limited(): boolean {
    return this.limit() !== null;
  }

  /** How many of `want` messages may be dispatched now (asking for more when there are none). */
  allow(want: number): number {
    const limit = this.limit();
    if (limit === null || want <= 0) return want;
    if (this.#tokens >= 1 && this.clock.monotonic() - this.#grantedAt > TOKEN_LIFE_MS) this.#tokens = 0;
    if (this.#tokens >= 1) return Math.min(want, this.#tokens);
    this.#ask(want, limit);
    return 0;
  }

  /** `n` messages were dispatched with the tokens {@link allow} gave. */
  take(n: number): void {
    if (this.limit() !== null) this.#tokens = Math.max(0, this.#tokens - n);
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #ask(want: number, limit: RateLimit): void {
    if (this.#asking || this.#timer !== undefined) return;
    this.#asking = true;
    const req: TokenRequest = { want, perSecond: limit.perSecond, burst: limit.burst };
    this.rpc.request(this.subject, encode(req), ASK_TIMEOUT_MS).then(
      (m) => {
        this.#asking = false;
        const grant = decode<TokenGrant>(m.data);
        this.#warned = false;
        if (grant.granted > 0) {
          this.#tokens += grant.granted;
          this.#grantedAt = this.clock.monotonic();
          this.wake();
        } else {
          this.#later(grant.waitMs);
        }
      },
      (err) => {
        this.#asking = false;
        if (!this.#warned) this.log.warn("cannot get push tokens from the master; holding the topic's messages", { subject: this.subject, error: err instanceof NoRespondersError ? "no master answers" : errorText(err) });
        this.#warned = true;
        this.#later(NO_MASTER_RETRY_MS);
      },
    );
  }

  #later(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.wake();
    }, Math.max(1, ms));
  }
}
