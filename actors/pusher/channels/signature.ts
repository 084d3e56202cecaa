/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
 * `<webhook-id>.<webhook-timestamp>.<body>`, sent as `webhook-signature: v1,<base64>`.
 * Receivers verify with {@link verifyWebhook}; any Standard Webhooks library verifies them too.
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";

const SECRET_PREFIX = "whsec_";

/**
 * Key bytes of a secret: `whsec_<base64>` is base64-decoded after the prefix (the Standard Webhooks
 * form); any other string is used as its UTF-8 bytes.
 */
export function webhookKey(secret: string): Buffer {
  return secret.startsWith(SECRET_PREFIX)
    ? Buffer.from(secret.slice(SECRET_PREFIX.length), "base64")
    : Buffer.from(secret, "utf8");
}

function digest(key: Buffer, id: string, timestampSec: number, body: string): string {
  return createHmac("sha256", key).update(`${id}.${timestampSec}.${body}`).digest("base64");
}

/**
 * The `webhook-signature` value for one delivery: `v1,<base64 HMAC-SHA256>`.
 * @param secret `whsec_<base64>` or a raw string (see {@link webhookKey}).
 * @param id the `webhook-id` header (Herald sends the message id).
 * @param timestampSec the `webhook-timestamp` header, in unix seconds.
 * @param body the exact request body.
 */
export function signWebhook(secret: string, id: string, timestampSec: number, body: string): string {
  return `v1,${digest(webhookKey(secret), id, timestampSec, body)}`;
}

/** Options of {@link verifyWebhook}. */
export interface VerifyOptions {
  /** Largest accepted distance between `webhook-timestamp` and now, in seconds. @defaultValue 300 */
  toleranceSec?: number;
  /** Now, in unix seconds. @defaultValue the current time */
  nowSec?: number;
}

/**
 * True when `headers` carry a valid Standard Webhooks signature of `body`: `webhook-id`,
 * `webhook-timestamp` within the tolerance of now (replays are refused), and at least one of the
 * space-separated `v1,<sig>` entries of `webhook-signature` matching (several are allowed so a
 * sender can rotate secrets). Header names are matched case-insensitively.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  opts: VerifyOptions = {},
): boolean {
  const id = header(headers, "webhook-id");
  const ts = header(headers, "webhook-timestamp");
  const sigs = header(headers, "webhook-signature");
  if (id === undefined || ts === undefined || sigs === undefined || !/^\d{1,15}$/.test(ts)) return false;
  const timestampSec = Number(ts);
  const nowSec = opts.nowSec ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowSec - timestampSec) > (opts.toleranceSec ?? 300)) return false;

  const expected = Buffer.from(digest(webhookKey(secret), id, timestampSec, body));
  let ok = false;
  for (const entry of sigs.split(" ")) {
    if (!entry.startsWith("v1,")) continue;
    const candidate = Buffer.from(entry.slice(3));
    // timingSafeEqual needs equal lengths; a length mismatch reveals nothing about the key.
    if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) ok = true;
  }
  return ok;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : headers[key];
  }
  return Array.isArray(value) ? value[0] : value;
}
