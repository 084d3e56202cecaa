/**
 * `npm run build --silent && node dist/bench/codec.js [--ms 300] [--rounds 5]`: what the strict
 * decoder for client payloads (`decodeUntrusted`) costs next to the lenient decoders it replaces
 * on ingest (msgpackr's unpack; `JSON.parse` via `decodeLenient`), on a typical envelope and a
 * 20 KB one, in one run. Rounds alternate between the decoders so drift hits both alike; each
 * figure is the median round. Prints one table on stdout.
 */
import { parseArgs } from "node:util";
import { decode, decodeLenient, decodeUntrusted, encode } from "../runtime/codec/index.js";

const { values } = parseArgs({ options: { ms: { type: "string", default: "300" }, rounds: { type: "string", default: "5" } } });
const roundMs = Number(values.ms);
const rounds = Number(values.rounds);
if (!(roundMs > 0) || !Number.isInteger(rounds) || rounds < 1) {
  console.error("bench/codec: --ms takes a number > 0, --rounds an integer ≥ 1");
  process.exit(2);
}

/** An envelope as ingest builds it, with `data` of about `dataItems` small records. */
function envelope(dataItems: number): object {
  const data: Record<string, unknown> = {
    title: "Order shipped",
    body: "Your parcel is on its way — arriving Thursday",
    url: "https://shop.example/orders/8812",
    badge: 3,
  };
  if (dataItems > 0) {
    data.items = Array.from({ length: dataItems }, (_, i) => ({
      sku: `SKU-${100_000 + i}`,
      name: `Item number ${i} — blue`,
      qty: (i % 5) + 1,
      price: 9.99 + i,
      tags: ["gift", "express"],
    }));
  }
  return {
    id: "01HZX3V6K9Q4T8B2M7N5R1C0DE",
    topic: "orders",
    to: "user:42",
    data,
    createdAt: 1_700_000_000_000,
    source: "submit",
    attempts: 0,
  };
}

interface Row {
  payload: string;
  format: string;
  bytes: number;
  lenient: number;
  strict: number;
}

let sink = 0;

/** Calls per second of `fn` over one round of `roundMs`. */
function rate(fn: () => unknown): number {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < roundMs) {
    for (let i = 0; i < 100; i++) if (fn() !== undefined) sink++;
    calls += 100;
    now = performance.now();
  }
  return (calls * 1000) / (now - start);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function compare(payload: string, format: string, bytes: Uint8Array, lenient: () => unknown): Row {
  const strict = () => {
    const result = decodeUntrusted(bytes);
    if (!result.ok) throw new Error(`bench payload refused: ${result.error}`);
    return result.value;
  };
  rate(lenient); // warm-up for the JIT, not measured
  rate(strict);
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < rounds; r++) {
    a.push(rate(lenient));
    b.push(rate(strict));
  }
  return { payload, format, bytes: bytes.length, lenient: median(a), strict: median(b) };
}

const rows: Row[] = [];
for (const [name, items] of [["typical", 0], ["20 KB", 230]] as const) {
  const value = envelope(items);
  const packed = encode(value);
  const text = new TextEncoder().encode(JSON.stringify(value));
  process.stderr.write(`bench/codec: ${name} envelope…\n`);
  rows.push(compare(name, "msgpack", packed, () => decode(packed)));
  rows.push(compare(name, "JSON", text, () => decodeLenient(text)));
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const header = ["envelope", "format", "bytes", "lenient ops/s", "decodeUntrusted ops/s", "strict / lenient"];
const lines = rows.map((r) => {
  const ratio = (r.strict / r.lenient).toFixed(2);
  return [r.payload, r.format, String(r.bytes), fmt(r.lenient), fmt(r.strict), ratio];
});
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const show = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
console.log(`lenient = msgpackr unpack (msgpack) or decodeLenient (JSON); ${rounds} rounds of ${roundMs} ms, median`);
console.log(show(header));
for (const line of lines) console.log(show(line));
if (sink < 0) console.log(sink); // keeps the results observable so no call is optimised away
