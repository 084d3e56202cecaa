/**
 * Why an untrusted payload was refused. Internal to the codec folder: the strict readers throw it
 * to unwind from deep inside a document, and `decodeUntrusted` turns it into an `{ ok: false }`.
 */
import { HeraldError } from "../errors.js";
export class Refusal extends HeraldError {
  constructor(message: string) {
    super("REFUSED", message);
    this.name = "Refusal";
  }
}
