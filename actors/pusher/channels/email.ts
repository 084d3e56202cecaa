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
import type { EmailTopicConfig, SingleTopicConfig } from "../../../runtime/config/schema.js";
import { errorText } from "../../../runtime/errors.js";
import { revealSecret } from "../../../runtime/nats/connect.js";
import { EMAIL_ADDRESS as ADDRESS } from "../../../runtime/pipeline/recipients.js";
import type { Outcome, PushMessage } from "../../../runtime/pipeline/types.js";
import { InFlight, type Channel } from "./channel.js";
import { pushToAddresses, type RecipientRegistry } from "./devices.js";

export class EmailChannel implements Channel {
  readonly kind = "email" as const;
  readonly #inFlight = new InFlight();
  /** One pooled transport per SMTP server configuration. */
  readonly #transports = new Map<string, Transporter>();

  /** @param registry the recipients registry; without one, `to` must be an address. */
  constructor(private readonly registry?: RecipientRegistry) {}

  push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (this.#inFlight.closed) return Promise.resolve({ outcome: "retry", reason: "email channel is closed" });
    return this.#inFlight.track(this.#push(msg, topic));
  }

  async close(): Promise<void> {
    await this.#inFlight.close();
    for (const t of this.#transports.values()) t.close();
    this.#transports.clear();
  }

  async #push(msg: PushMessage, topic: SingleTopicConfig): Promise<Outcome> {
    if (topic.channel !== "email") return { outcome: "dead", reason: "rejected", error: `email channel cannot push topic ${msg.topic} of channel ${topic.channel}` };
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
    return pushToAddresses(msg, {
      kind: "email",
      bare: (to) => ADDRESS.test(to),
      parse: (text) => (ADDRESS.test(text) ? text : { problem: "one plain address such as ada@example.com (no display name, no list)" }),
      describe: (address) => address,
      send: async (address) => {
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
      },
    }, this.registry);
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

/** What a failed send means: the server's 4xx and broken connections are worth a retry; its 5xx is final. */
export function smtpOutcome(err: unknown, where: string): Outcome {
  const e = err as { responseCode?: unknown; response?: unknown; code?: unknown };
  const said = typeof e.response === "string" ? e.response : errorText(err);
  const code = typeof e.responseCode === "number" ? e.responseCode : undefined;
  if (code !== undefined && code >= 500) return { outcome: "dead", reason: "rejected", error: `the SMTP server ${where} refused the mail (${code}): ${said.slice(0, 300)}` };
  if (code !== undefined && code >= 400) return { outcome: "retry", reason: `the SMTP server ${where} deferred the mail (${code}): ${said.slice(0, 300)}` };
  return { outcome: "retry", reason: `sending to the SMTP server ${where} failed: ${errorText(err).slice(0, 300)}` };
}
