import type { ClusterStatus, CollectorStatus } from "../supervisor/status.js";

/**
 * The human-readable `herald status`: one line per node, then its actors, then the collectors.
 * `now` (ms since epoch) turns the collectors' tick times into ages.
 */
export function renderStatus(s: ClusterStatus, now = Date.now()): string {
  const lines: string[] = [];
  const master = s.master?.node ? `${s.master.node} (epoch ${s.master.epoch})` : "none";
  lines.push(`cluster ${s.cluster}   master ${master}`);
  lines.push(`queue pending ${s.queue.pending}   exceptions retrying ${s.exceptions.retrying}, dead ${s.exceptions.dead}   scheduled ${s.scheduled.pending}`);
  const header = ["NODE", "STATE", "ROLE", "PID", "IP", "READMARK", "BEAT AGE", "STOP", "ACTORS"];
  const rows = s.nodes.map((n) => {
    const running = n.actors.filter((a) => a.state === "running").length;
    return [
      n.name,
      n.state,
      n.role,
      n.pid?.toString() ?? "-",
      n.mainProcessIp ?? "-",
      n.readMark?.toString() ?? "-",
      n.heartbeatAgeMs === null ? "-" : `${n.heartbeatAgeMs} ms`,
      n.isStopServer ? "yes" : "no",
      `${running}/${n.actors.length} running`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  lines.push("", fmt(header), ...rows.map(fmt));
  for (const n of s.nodes) {
    const troubled = n.actors.filter((a) => a.state !== "running" || a.restarts > 0);
    for (const a of troubled) {
      lines.push(`  ${n.name}/${a.id}: ${a.state}, ${a.restarts} restarts${a.lastError ? `, last error: ${a.lastError}` : ""}`);
    }
  }
  if (s.collectors?.length) lines.push("", ...renderCollectors(s.collectors, now));
  if (s.endpoints?.length) lines.push("", ...s.endpoints.map((e) => `endpoint ${e.state}: ${e.endpoint} (topics ${e.topics.join(", ")}) since ${e.since}: ${e.reason}`));
  for (const w of s.warnings ?? []) lines.push("", `warning: ${w.message}`);
  return `${lines.join("\n")}\n`;
}

function renderCollectors(list: CollectorStatus[], now: number): string[] {
  const header = ["COLLECTOR", "KIND", "STATE", "NODE", "LAST TICK", "COLLECTED", "LAG", "LAST ERROR"];
  const rows = list.map((c) => [
    c.name,
    c.kind,
    c.state,
    c.node ?? "-",
    c.lastTickAt ? `${seconds(now - Date.parse(c.lastTickAt))} ago` : "-",
    String(c.collected),
    c.lagMs === null ? "-" : seconds(c.lagMs),
    // An error the collector has since recovered from stays in the JSON; the table shows live trouble.
    c.state === "failing" || c.state === "fenced" ? (c.lastError ?? "-") : "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (i === header.length - 1 ? 0 : r[i]!.length))));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}

/** `0.4 s`, `12 s`, `3.2 min`. */
function seconds(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${(s / 60).toFixed(1)} min`;
}
