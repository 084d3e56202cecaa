/**
 * Why an untrusted payload was refused. Internal to the codec folder: the strict readers throw it
 * to unwind from deep inside a document, and `decodeUntrusted` turns it into an `{ ok: false }`.
 */
export class Refusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Refusal";
  }
}
