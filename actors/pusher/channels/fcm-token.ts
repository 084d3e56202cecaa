/**
 * OAuth2 access tokens for a Google service account, by the JWT-bearer grant (RFC 7523), as
 * google-auth-library gets them: an RS256 JWT `{ iss: client_email, scope, aud: token_uri, iat,
 * exp: iat + 3600 }` signed with the account's private key is POSTed to its `token_uri`, which
 * answers `{ access_token, expires_in }`. A token serves every push of the account until 60 s
 * before it expires; one request at a time per account, shared by the pushes that wait for it.
 * A key file is read once; one that cannot be used is not remembered, so a fixed file is picked up
 * by the next push.
 */
import { readFile } from "node:fs/promises";
import { importPKCS8, SignJWT, type CryptoKey } from "jose";
import { errorText, HeraldError, TimeoutError } from "../../../runtime/errors.js";
import type { Outcome } from "../../../runtime/pipeline/types.js";
import type { PostResponse } from "./http-post.js";
import { retryAfterMs } from "./webhook.js";

/** The scope FCM's HTTP v1 API asks for. */
export const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
/** A token is fetched anew this long before it expires, in ms. */
const REFRESH_MARGIN_MS = 60_000;
const ASSERTION_LIFETIME_SEC = 3600;

/** A service account's key file, read and checked. */
export interface ServiceAccount {
  file: string;
  clientEmail: string;
  tokenUri: URL;
  keyId?: string;
  key: CryptoKey;
}

/** The service account file cannot be used. The message names the file and the field, never the key. */
export class ServiceAccountError extends HeraldError {
  constructor(message: string) {
    super("FCM_SERVICE_ACCOUNT", message);
    this.name = "ServiceAccountError";
  }
}

/** No access token: the token endpoint refused (a dead outcome) or could not be asked (a retry). */
export class AccessTokenError extends Error {
  override readonly name = "AccessTokenError";
  constructor(readonly outcome: Outcome & { outcome: "dead" | "retry" }) {
    super(outcome.outcome === "dead" ? outcome.error : outcome.reason);
  }
}

/** POSTs a form to the token endpoint (the caller's pool and CA). */
export type TokenPost = (url: URL, headers: Record<string, string>, body: string) => Promise<PostResponse>;

interface Cached {
  pending: Promise<string>;
  value?: string;
  /** When to fetch anew, ms since epoch; set once the token came. */
  refreshAt?: number;
}

export class AccessTokens {
  readonly #accounts = new Map<string, Promise<ServiceAccount>>();
  readonly #tokens = new Map<string, Cached>();

  /** @param now the clock of the assertion's `iat` and of the token's expiry, in ms since epoch. */
  constructor(private readonly now: () => number) {}

  /** The service account in `file`. Rejects with a {@link ServiceAccountError}. */
  account(file: string): Promise<ServiceAccount> {
    let a = this.#accounts.get(file);
    if (!a) {
      a = loadAccount(file);
      this.#accounts.set(file, a);
      a.catch(() => this.#accounts.delete(file));
    }
    return a;
  }

  /** An access token of `account`: the cached one, or one fetched with `post`. Rejects with an {@link AccessTokenError}. */
  token(account: ServiceAccount, post: TokenPost, timeoutMs: number): Promise<string> {
    const cached = this.#tokens.get(account.file);
    if (cached && (cached.refreshAt === undefined || this.now() < cached.refreshAt)) return cached.pending;
    const entry: Cached = { pending: this.#fetch(account, post, timeoutMs).then(({ token, expiresInSec }) => {
      entry.value = token;
      entry.refreshAt = this.now() + Math.max(0, expiresInSec * 1000 - REFRESH_MARGIN_MS);
      return token;
    }) };
    this.#tokens.set(account.file, entry);
    entry.pending.catch(() => {
      if (this.#tokens.get(account.file) === entry) this.#tokens.delete(account.file);
    });
    return entry.pending;
  }

  /** FCM refused `token` (401): the next {@link token} fetches another, unless one already replaced it. */
  drop(account: ServiceAccount, token: string): void {
    if (this.#tokens.get(account.file)?.value === token) this.#tokens.delete(account.file);
  }

  async #fetch(account: ServiceAccount, post: TokenPost, timeoutMs: number): Promise<{ token: string; expiresInSec: number }> {
    const iat = Math.floor(this.now() / 1000);
    const assertion = await new SignJWT({ scope: FCM_SCOPE })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", ...(account.keyId === undefined ? {} : { kid: account.keyId }) })
      .setIssuer(account.clientEmail)
      .setAudience(account.tokenUri.href)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ASSERTION_LIFETIME_SEC)
      .sign(account.key);
    const form = new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }).toString();
    const where = `the token endpoint ${account.tokenUri.origin}${account.tokenUri.pathname}`;
    let res: PostResponse;
    try {
      res = await post(account.tokenUri, { "content-type": "application/x-www-form-urlencoded" }, form);
    } catch (err) {
      const why = err instanceof TimeoutError ? `did not answer within ${timeoutMs} ms` : `failed: ${errorText(err)}`;
      throw new AccessTokenError({ outcome: "retry", reason: `${where} ${why}` });
    }
    if (res.status === 200) {
      const answer = parseJson(res.text) as { access_token?: unknown; expires_in?: unknown };
      if (typeof answer?.access_token === "string" && answer.access_token !== "") {
        return { token: answer.access_token, expiresInSec: typeof answer.expires_in === "number" ? answer.expires_in : ASSERTION_LIFETIME_SEC };
      }
      throw new AccessTokenError({ outcome: "retry", reason: `${where} answered 200 without an access_token` });
    }
    const e = parseJson(res.text) as { error?: unknown; error_description?: unknown } | undefined;
    const code = typeof e?.error === "string" ? e.error.slice(0, 60) : "";
    const description = typeof e?.error_description === "string" ? e.error_description.slice(0, 200) : "";
    const said = `${res.status}${code ? ` ${code}` : ""}${description ? `: ${description}` : ""}`;
    if (res.status === 408 || res.status === 429 || res.status >= 500) {
      const after = retryAfterMs(res.header("retry-after") ?? null, this.now());
      throw new AccessTokenError({ outcome: "retry", reason: `${where} answered ${said}`, ...(after === undefined ? {} : { retryAfterMs: after }) });
    }
    throw new AccessTokenError({
      outcome: "dead",
      reason: "rejected",
      error:
        `${where} refused the assertion of service account ${account.clientEmail} (${said}): the key may be deleted or disabled, or this host's clock off; ` +
        `fix serviceAccountFile ${account.file} (a new JSON key: Google Cloud console › IAM › Service accounts › Keys) and replay the dead letters`,
    });
  }
}

const HOW = "it must be the JSON key of a service account of the Firebase project (Google Cloud console › IAM › Service accounts › Keys › Add key › JSON)";

async function loadAccount(file: string): Promise<ServiceAccount> {
  const bad = (what: string) => new ServiceAccountError(`the FCM service account file ${file} (serviceAccountFile) ${what}; ${HOW}`);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ServiceAccountError(`cannot read the FCM service account file ${file} (serviceAccountFile): ${errorText(err)}; ${HOW}`);
  }
  // JSON.parse's message quotes the text, which may be a key: never repeat it.
  const json = parseJson(text);
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad("is not a JSON object");
  const f = json as Record<string, unknown>;
  if (f.type !== undefined && f.type !== "service_account") {
    throw bad(`is a ${typeof f.type === "string" && /^[a-z_]{1,40}$/.test(f.type) ? `"${f.type}"` : "different kind of"} credential, not a service account key`);
  }
  const missing = ["client_email", "private_key", "token_uri"].filter((k) => typeof f[k] !== "string" || f[k] === "");
  if (missing.length > 0) throw bad(`has no ${missing.map((k) => `"${k}"`).join(", ")}`);
  let tokenUri: URL;
  try {
    tokenUri = new URL(f.token_uri as string);
  } catch {
    throw bad(`has a "token_uri" that is not a URL`);
  }
  if (tokenUri.protocol !== "https:") throw bad(`has a "token_uri" that is not https://`);
  let key: CryptoKey;
  try {
    key = await importPKCS8((f.private_key as string).trim(), "RS256");
  } catch (err) {
    // jose's words say what is wrong with the key's format, never what is in it.
    throw bad(`has a "private_key" that is not an RSA private key in PKCS#8 PEM (${errorText(err)})`);
  }
  return {
    file,
    clientEmail: f.client_email as string,
    tokenUri,
    ...(typeof f.private_key_id === "string" && /^[0-9a-f]{1,64}$/i.test(f.private_key_id) ? { keyId: f.private_key_id } : {}),
    key,
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
