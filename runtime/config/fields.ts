/** Field helpers shared by the config's schema files. */
import * as z from "zod";
import { integer, mustBe } from "./errors.js";

/** Cross-field checks run even when a field failed (see rules/schema.ts); they need an object. */
export const always = { when: (payload: { value: unknown }) => typeof payload.value === "object" && payload.value !== null };

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** A node, topic or collector name: 1–64 letters, digits, "_" or "-" (safe as a subject token). */
export const name = () =>
  z.string({ error: (issue) => mustBe("a string", issue.input) }).regex(NAME, {
    error: (issue) => mustBe('1–64 letters, digits, "_" or "-"', issue.input),
  });

export const port = integer(1, 65_535);

/** An HTTP header name (RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
