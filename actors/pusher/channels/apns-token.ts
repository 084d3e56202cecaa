/**
 * APNs provider tokens (token-based connection trust): a JWT signed ES256 with the team's .p8 key,
 * header `{ alg: "ES256", kid: keyId }`, claims `{ iss: teamId, iat }`. APNs accepts one for an
 * hour and refuses a provider that makes new ones more often than every 20 minutes
 * (TooManyProviderTokenUpdates), so each is kept for {@link TOKEN_REFRESH_MS} and every push of
 * the key shares it. A key file is read once; one that cannot be read is not remembered, so a
 * fixed file is picked up by the next push.
 */
import { readFile } from "node:fs/promises";
import { importPKCS8, SignJWT, type CryptoKey } from "jose";
import { errorText, HeraldError } from "../../../runtime/errors.js";

/** A provider token is made anew after this long, in ms: between APNs's 20 minutes and its hour. */
export const TOKEN_REFRESH_MS = 50 * 60_000;

/** What signs a provider token: a topic's `teamId`, `keyId` and (absolute) `keyFile`. */
export interface ProviderKey {
  teamId: string;
  keyId: string;
  keyFile: string;
}

/** The .p8 key cannot be used. The message names the file and the fix, never the key. */
export class ApnsKeyError extends HeraldError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super("APNS_KEY", message, opts);
    this.name = "ApnsKeyError";
  }
}

interface Made {
  jwt: Promise<string>;
  /** The token once signed. */
  value?: string;
  /** ms since epoch, on the channel's clock. */
  madeAt: number;
}

export class ProviderTokens {
  readonly #keys = new Map<string, Promise<CryptoKey>>();
  readonly #tokens = new Map<string, Made>();

  /** @param now the clock of `iat` and of the refresh, in ms since epoch. */
  constructor(private readonly now: () => number) {}

  /** The provider token of `key`: the cached one, or a new one when it is older than {@link TOKEN_REFRESH_MS}. Rejects with an {@link ApnsKeyError}. */
  token(key: ProviderKey): Promise<string> {
    const id = tokenId(key);
    const cached = this.#tokens.get(id);
    if (cached && this.now() - cached.madeAt < TOKEN_REFRESH_MS) return cached.jwt;
    const madeAt = this.now();
    const jwt = this.#key(key.keyFile).then((k) =>
      new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: key.keyId }).setIssuer(key.teamId).setIssuedAt(Math.floor(madeAt / 1000)).sign(k),
    );
    const made: Made = { jwt, madeAt };
    this.#tokens.set(id, made);
    jwt.then(
      (value) => (made.value = value),
      () => {
        if (this.#tokens.get(id) === made) this.#tokens.delete(id);
      },
    );
    return jwt;
  }

  /**
   * APNs said `jwt` has expired (ExpiredProviderToken): the next {@link token} makes a new one,
   * unless a concurrent push already replaced it (one refresh for every push it failed).
   */
  expire(key: ProviderKey, jwt: string): void {
    const id = tokenId(key);
    if (this.#tokens.get(id)?.value === jwt) this.#tokens.delete(id);
  }

  #key(file: string): Promise<CryptoKey> {
    let key = this.#keys.get(file);
    if (!key) {
      key = loadKey(file);
      this.#keys.set(file, key);
      key.catch(() => this.#keys.delete(file));
    }
    return key;
  }
}

const tokenId = (k: ProviderKey) => JSON.stringify([k.keyFile, k.teamId, k.keyId]);

const HOW = "it must be the .p8 file (PKCS#8 PEM, P-256) Apple issued for the key keyId names (Apple Developer › Certificates, IDs & Profiles › Keys, with APNs enabled)";

async function loadKey(file: string): Promise<CryptoKey> {
  let pem: string;
  try {
    pem = await readFile(file, "utf8");
  } catch (err) {
    throw new ApnsKeyError(`cannot read the APNs key file ${file} (keyFile): ${errorText(err)}; ${HOW}`);
  }
  try {
    return await importPKCS8(pem.trim(), "ES256");
  } catch (err) {
    // jose's words say what is wrong with the key (its format, its curve), never what is in it.
    throw new ApnsKeyError(`the APNs key file ${file} (keyFile) is not a P-256 private key in PKCS#8 PEM (${errorText(err)}); ${HOW}`);
  }
}
