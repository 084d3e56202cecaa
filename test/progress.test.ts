import { describe, expect, test } from "vitest";
import { Progress } from "../runtime/cli/progress.js";

/** A stand-in for process.stderr: a terminal or not, recording what is written. */
function stream(isTTY: boolean): NodeJS.WriteStream & { written: string[] } {
  const written: string[] = [];
  return { isTTY, written, write: (s: string) => (written.push(s), true) } as unknown as NodeJS.WriteStream & { written: string[] };
}

describe("progress lines", () => {
  test("on a terminal: one line rewritten in place, cleared when done", () => {
    const s = stream(true);
    const p = new Progress(s);
    expect(p.active).toBe(true);
    p.update("1 of 3", true);
    p.update("2 of 3", true);
    p.done();
    expect(s.written).toEqual(["\r\x1b[K1 of 3", "\r\x1b[K2 of 3", "\r\x1b[K"]);
  });

  test("at most ten updates a second unless forced", () => {
    const s = stream(true);
    const p = new Progress(s);
    for (let i = 0; i < 100; i++) p.update(`${i}`);
    expect(s.written).toEqual(["\r\x1b[K0"]);
  });

  test("piped: nothing at all", () => {
    const s = stream(false);
    const p = new Progress(s);
    expect(p.active).toBe(false);
    p.update("1 of 3", true);
    p.done();
    expect(s.written).toEqual([]);
  });
});
