/**
 * The `email` channel: sends the rendered `subject`, `text` and optional `html` over SMTP, with
 * nodemailer (pooled connections per server, STARTTLS, AUTH), to the message's `to`: an address,
 * or a recipient id whose email addresses the recipients registry holds (each gets the mail).
 *
 * Outcomes, as SMTP means them: the server's 2xx after DATA is `delivered` (it has taken the mail);
 * a 4xx reply or a connection that fails or times out is `retry`; a 5xx reply (no such mailbox,
 * refused sender, failed login) is `dead` with the server's words; a message that cannot be mail
 * (no address in `to`, a missing subject or text) is `dead` at once.
 */
import { readFileSync } from "node:fs";
import nodemailer, { type Transporter } from "nodemailer";
import type { EmailTopicConfig, TopicConfig } from "../../../runtime/config/schema.js";
import { errorText } from "../../../runtime/errors.js";
import { revealSecret } from "../../../runtime/nats/connect.js";
import { EMAIL_ADDRESS as ADDRESS, type Recipient } from "../../../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { InFlight, type Channel } from "./channel.js";

/** Finds a recipient's addresses in the registry (undefined: no such recipient). */
export type RecipientLookup = (id: string) => Promise<Recipient | undefined>;

export class EmailChannel implements Channel {
  readonly kind = "email" as const;
  readonly #inFlight = new InFlight();
  /** One pooled transport per SMTP server configuration. */
  readonly #transports = new Map<string, Transporter>();

  /** @param recipients the registry; without one, `to` must be an address. */
  constructor(private readonly recipients?: RecipientLookup) {}

  push(msg: PushMessage, topic: TopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "email channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  async close(): Promise<void> {
    await this.#inFlight.close();
    for (const t of this.#transports.values()) t.close();
    this.#transports.clear();
  }

  async #push(msg: PushMessage, topic: TopicConfig): Promise<Outcome> {
    if (topic.channel !== "email") return { outcome: "dead", reason: "rejected", error: `email channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
    const to = msg.to;
    if (to === undefined) return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic} sends email: the message's "to" must be one email address or a recipient id, got none` };
    const { subject, text, html } = msg.rendered;
    if (typeof subject !== "string" || typeof text !== "string") {
      return { outcome: "dead", reason: "render", error: `topic ${msg.topic}: the template must render "subject" and "text" for email` };
    }
    let transport: Transporter;
    try {
      transport = this.#transport(topic, msg.topic);
    } catch (err) {
      return { outcome: "dead", reason: "rejected", error: `topic ${msg.topic}: ${errorText(err)}; fix it and replay the dead letters` };
    }
    const where = `${topic.smtp.host}:${topic.smtp.port}`;
    const send = async (address: string): Promise<Outcome> => {
      try {
        const info = await transport.sendMail({
          from: topic.from,
          to: address,
          subject,
          text,
          ...(typeof html === "string" ? { html } : {}),
          // The message id travels as a header, so a receiver can tell a retry's duplicate.
          headers: { "X-Herald-Id": msg.id },
        });
        return { outcome: "delivered", detail: `accepted by ${where}: ${String(info.response).slice(0, 200)}` };
      } catch (err) {
        return smtpOutcome(err, where);
      }
    };
    if (ADDRESS.test(to)) return send(to);
    const addresses = await this.#addresses(to, msg.topic);
    if (!Array.isArray(addresses)) return addresses;
    if (addresses.length === 0) return { outcome: "delivered", detail: `recipient ${to} has no email address: nothing to send` };
    return combine(to, addresses, await Promise.all(addresses.map(send)));
  }

  /** The recipient's email addresses, or the outcome when they cannot be had. */
  async #addresses(id: string, topic: string): Promise<string[] | Outcome> {
    if (!this.recipients) return { outcome: "dead", reason: "rejected", error: `topic ${topic} sends email: "to" is neither an email address nor, without a recipients registry, a recipient` };
    let r: Recipient | undefined;
    try {
      r = await this.recipients(id);
    } catch (err) {
      return { outcome: "retry", reason: `cannot read recipient ${JSON.stringify(id.slice(0, 130))} from the recipients registry: ${errorText(err)}` };
    }
    if (r === undefined) {
      return { outcome: "dead", reason: "rejected", error: `topic ${topic} sends email to ${JSON.stringify(id.slice(0, 130))}, which is neither an email address nor a recipient in the registry (herald recipients set ID --json '{"email":["…"]}'); replay the letter once it is` };
    }
    return r.email ?? [];
  }

  #transport(topic: EmailTopicConfig, name: string): Transporter {
    const { smtp, timeoutMs } = topic;
    const key = JSON.stringify([smtp, timeoutMs]);
    let t = this.#transports.get(key);
    if (!t) {
      t = nodemailer.createTransport({
        pool: true,
        maxConnections: smtp.maxConnections,
        host: smtp.host,
        port: smtp.port,
        secure: smtp.secure,
        requireTLS: smtp.requireTLS,
        ...(smtp.caFile ? { tls: { ca: readFileSync(smtp.caFile, "utf8") } } : {}),
        ...(smtp.auth ? { auth: { user: smtp.auth.user, pass: revealSecret(smtp.auth.pass, `topics.${name}.smtp.auth.pass`) } } : {}),
        connectionTimeout: timeoutMs,
        greetingTimeout: timeoutMs,
        socketTimeout: timeoutMs,
      });
      this.#transports.set(key, t);
    }
    return t;
  }
}

/**
 * One outcome for a mail sent to each of a recipient's addresses: retry if any was deferred (the
 * retry sends to all of them again: at least once), else delivered if any server took it (the
 * refused ones named), else the refusal.
 */
function combine(id: string, addresses: string[], outcomes: Outcome[]): Outcome {
  const retry = outcomes.find((o) => o.outcome === "retry");
  if (retry) return retry;
  const refused = addresses.filter((_, i) => outcomes[i]!.outcome === "dead");
  if (refused.length < addresses.length) {
    return { outcome: "delivered", detail: `sent to ${addresses.length - refused.length} of recipient ${id}'s ${addresses.length} addresses${refused.length ? `; refused: ${refused.join(", ")}` : ""}` };
  }
  return outcomes[0]!;
}

/** What a failed send means: the server's 4xx and broken connections are worth a retry; its 5xx is final. */
export function smtpOutcome(err: unknown, where: string): Outcome {
  const e = err as { responseCode?: unknown; response?: unknown; code?: unknown };
  const said = typeof e.response === "string" ? e.response : errorText(err);
  const code = typeof e.responseCode === "number" ? e.responseCode : undefined;
  if (code !== undefined && code >= 500) return { outcome: "dead", reason: "rejected", error: `the SMTP server ${where} refused the mail (${code}): ${said.slice(0, 300)}` };
  if (code !== undefined && code >= 400) return { outcome: "retry", reason: `the SMTP server ${where} deferred the mail (${code}): ${said.slice(0, 300)}` };
  return { outcome: "retry", reason: `sending to the SMTP server ${where} failed: ${errorText(err).slice(0, 300)}` };
}
