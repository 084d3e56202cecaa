/**
 * One lane per topic: its sub-queue scheduler, the rule in force (base rule with calendar and
 * load overrides applied) and the received-rate meter the load overrides read.
 */
import { effectiveRules, RateMeter } from "../../runtime/rules/select.js";
import { seededRandom } from "../../runtime/rules/random.js";
import type { EffectiveRules } from "../../runtime/rules/types.js";
import type { RulesView } from "./rules-view.js";
import { SubQueueScheduler } from "./scheduler.js";

/** Calendar and load overrides are re-evaluated at most this often, ms. */
const RULES_REFRESH_MS = 100;

export class Lane<T> {
  readonly scheduler: SubQueueScheduler<T>;
  private readonly meter = new RateMeter({ maxWindowMs: 3_600_000 });
  private cached: { rules: EffectiveRules; at: number; version: number } | undefined;
  private rng: () => number = Math.random;
  private seed: number | undefined;

  constructor(
    readonly topic: string,
    private readonly view: RulesView,
  ) {
    this.scheduler = new SubQueueScheduler<T>({
      rules: () => this.rules(),
      now: Date.now,
      random: () => this.rng(),
    });
  }

  add(item: T, receivedAtMs: number): void {
    this.meter.record(Date.now());
    this.scheduler.add(item, receivedAtMs);
  }

  rules(): EffectiveRules {
    const now = Date.now();
    const c = this.cached;
    if (c && c.version === this.view.version && now - c.at < RULES_REFRESH_MS) return c.rules;
    const base = this.view.rulesFor(this.topic);
    if (base.seed !== this.seed) {
      // A seeded rule makes the random schemes reproducible.
      this.seed = base.seed;
      this.rng = base.seed === undefined ? Math.random : seededRandom(base.seed);
    }
    const rules = effectiveRules(base, now, (w) => this.meter.perSec(w, now));
    this.cached = { rules, at: now, version: this.view.version };
    return rules;
  }
}
