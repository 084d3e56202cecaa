// The Herald console: one page, no build step. Preact + htm for the views, uPlot for the charts.
// Everything it shows and does goes through the node's HTTP API (GET /openapi.json): the live
// feed GET /v1/events, /v1/dead-letters, /v1/rules, /v1/topics/<topic>/…
import { h, render } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";
import uPlot from "uplot";

const html = htm.bind(h);
const TOKEN_KEY = "herald.token";
/** Points kept per chart: five minutes of one-second updates. */
const HISTORY = 300;

/** The HTTP API with the stored bearer token; a 401 asks for the token. */
function useApi(onUnauthorized) {
  return useCallback(
    async (method, path, body) => {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const res = await fetch(path, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (res.status === 401) onUnauthorized();
      const json = await res.json().catch(() => ({}));
      return { ok: res.ok, status: res.status, json };
    },
    [onUnauthorized],
  );
}

/** The live feed: server-sent events read with fetch (EventSource cannot send the token). */
function useLive(onUnauthorized, generation) {
  const [update, setUpdate] = useState(undefined);
  const [problem, setProblem] = useState(undefined);
  const history = useRef([]);
  useEffect(() => {
    let stopped = false;
    const abort = new AbortController();
    const run = async () => {
      while (!stopped) {
        try {
          const token = sessionStorage.getItem(TOKEN_KEY);
          const res = await fetch("/v1/events", { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: abort.signal });
          if (res.status === 401) return onUnauthorized();
          if (!res.ok || !res.body) throw new Error(`the live feed answered ${res.status}`);
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const event = /^event: (.*)$/m.exec(block)?.[1];
              const data = /^data: (.*)$/m.exec(block)?.[1];
              if (!data) continue;
              const parsed = JSON.parse(data);
              if (event === "update") {
                history.current = [...history.current, parsed].slice(-HISTORY);
                setUpdate(parsed);
                setProblem(undefined);
              } else if (event === "problem") setProblem(parsed.error);
            }
          }
          throw new Error("the live feed ended");
        } catch (err) {
          if (stopped) return;
          setProblem(`${err.message}; reconnecting…`);
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
    };
    void run();
    return () => {
      stopped = true;
      abort.abort();
    };
  }, [generation]);
  return { update, problem, history: history.current };
}

function SignIn({ onSignedIn }) {
  const [token, setToken] = useState("");
  const submit = (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, token);
    onSignedIn();
  };
  return html`<section class="signin">
    <h1>Herald console</h1>
    <p>This cluster asks for its HTTP token (the config's <code>http.token</code>).</p>
    <form onSubmit=${submit} class="row">
      <input type="password" name="token" placeholder="token" value=${token} onInput=${(e) => setToken(e.target.value)} autofocus />
      <button type="submit">Sign in</button>
    </form>
  </section>`;
}

const age = (ms) => (ms === null || ms === undefined ? "–" : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

function Cluster({ status }) {
  const master = status.master;
  return html`<section id="cluster">
    <h2>Cluster ${status.cluster}</h2>
    <div class="counts">
      <div class="count" id="master">master <b>${master?.node ?? "none"}</b> <span class="muted">epoch ${master?.epoch ?? "–"}</span></div>
      <div class="count">queued <b id="queue-pending">${status.queue.pending}</b></div>
      <div class="count">retrying <b id="exceptions-retrying">${status.exceptions.retrying}</b></div>
      <div class="count">dead letters <b id="dead-count">${status.exceptions.dead}</b></div>
      ${status.scheduled && html`<div class="count">scheduled <b id="scheduled-pending">${status.scheduled.pending}</b></div>`}
    </div>
    ${status.warnings.map((w) => html`<p class="warn">${w.message}</p>`)}
    ${(status.endpoints ?? []).map((e) => html`<p class=${e.state === "half-open" ? "warn" : "error"} data-endpoint=${e.endpoint}>endpoint ${e.state}: ${e.endpoint} (${e.topics.join(", ")}) since ${e.since}: ${e.reason}</p>`)}
    <table>
      <thead><tr><th>node</th><th>state</th><th>role</th><th>heartbeat</th><th>pid</th><th>actors (restarts)</th></tr></thead>
      <tbody>
        ${status.nodes.map(
          (n) => html`<tr data-node=${n.name}>
            <td>${n.name}</td>
            <td class=${`state-${n.state}`} data-state>${n.state}</td>
            <td>${n.role}</td>
            <td>${age(n.heartbeatAgeMs)}</td>
            <td>${n.pid ?? "–"}</td>
            <td>${n.actors.map((a) => html`<span class="pill"><span class=${`state-${a.state}`}>${a.id}</span> ${a.restarts > 0 ? `(${a.restarts})` : ""}</span>`)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

/** One uPlot chart of a topic: delivered per second and mean stored-to-pushed latency, from feed deltas. */
function TopicChart({ topic, history }) {
  const el = useRef(null);
  const plot = useRef(null);
  const data = [[], [], []];
  const none = { delivered: 0, latencySum: 0, latencyCount: 0 };
  for (let i = 1; i < history.length; i++) {
    // A topic nothing has been pushed for through this node yet has no counts: zero.
    const a = history[i - 1].topics[topic] ?? none;
    const b = history[i].topics[topic] ?? none;
    const secs = (history[i].at - history[i - 1].at) / 1000 || 1;
    const n = b.latencyCount - a.latencyCount;
    data[0].push(history[i].at / 1000);
    data[1].push(Math.max(0, (b.delivered - a.delivered) / secs));
    data[2].push(n > 0 ? ((b.latencySum - a.latencySum) / n) * 1000 : null);
  }
  useEffect(() => {
    if (!el.current) return;
    if (!plot.current) {
      plot.current = new uPlot(
        {
          width: 360,
          height: 160,
          series: [{}, { label: "delivered/s", stroke: "#3451b2" }, { label: "latency ms", stroke: "#c4320a", scale: "ms" }],
          axes: [{}, { label: "/s" }, { side: 1, scale: "ms", label: "ms", grid: { show: false } }],
        },
        data,
        el.current,
      );
    } else plot.current.setData(data);
  });
  useEffect(() => () => plot.current?.destroy(), []);
  // What the chart holds, readable by tests and scripts: its points, and the deliveries they add up to.
  const deliveredShown = Math.round(data[1].reduce((sum, rate, i) => sum + rate * (i === 0 ? 0 : data[0][i] - data[0][i - 1]), 0));
  return html`<div data-chart=${topic} data-points=${data[0].length} data-delivered=${deliveredShown}><b>${topic}</b> <span class="muted">on this node</span><div ref=${el}></div></div>`;
}

function Charts({ update, history }) {
  const topics = update.topicNames;
  return html`<section id="charts">
    <h2>Throughput and latency, last minutes</h2>
    ${topics.length === 0 ? html`<p class="muted">No topics are configured.</p>` : html`<div class="charts">${topics.map((t) => html`<${TopicChart} key=${t} topic=${t} history=${history} />`)}</div>`}
  </section>`;
}

function DeadLetters({ api, deadCount }) {
  const [filter, setFilter] = useState({ id: "", topic: "", reason: "" });
  const [result, setResult] = useState({ total: 0, letters: [] });
  const [selected, setSelected] = useState(new Set());
  const [message, setMessage] = useState("");
  const load = useCallback(async () => {
    const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== ""));
    const r = await api("GET", `/v1/dead-letters?${q}`);
    if (r.ok) setResult(r.json);
    else setMessage(r.json.error ?? `failed (${r.status})`);
  }, [api, filter]);
  useEffect(() => void load(), [deadCount]);
  const act = async (action, body) => {
    const r = await api("POST", `/v1/dead-letters/${action}`, body);
    if (!r.ok) setMessage(r.json.error ?? `failed (${r.status})`);
    else if (action === "replay") setMessage(`replayed ${r.json.replayed.length}${r.json.refused.length ? `; refused: ${r.json.refused.map((x) => `${x.id} (${x.error})`).join(", ")}` : ""}`);
    else setMessage(`purged ${r.json.purged}`);
    setSelected(new Set());
    await load();
  };
  const matching = { all: true, ...(filter.topic ? { topic: filter.topic } : {}), ...(filter.reason ? { reason: filter.reason } : {}) };
  const toggle = (id) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const field = (name) => html`<input name=${name} placeholder=${name} value=${filter[name]} onInput=${(e) => setFilter({ ...filter, [name]: e.target.value })} />`;
  return html`<section id="dead-letters">
    <h2>Dead letters <span class="muted">(${result.total})</span></h2>
    <form class="row" onSubmit=${(e) => { e.preventDefault(); void load(); }}>
      ${field("id")} ${field("topic")} ${field("reason")}
      <button type="submit" class="secondary">Search</button>
      <button type="button" disabled=${selected.size === 0} onClick=${() => act("replay", { ids: [...selected] })}>Replay selected</button>
      <button type="button" class="secondary" disabled=${selected.size === 0} onClick=${() => act("purge", { ids: [...selected] })}>Purge selected</button>
      <button type="button" disabled=${result.total === 0 || filter.id !== ""} onClick=${() => act("replay", matching)}>Replay all matching</button>
      <button type="button" class="secondary" disabled=${result.total === 0 || filter.id !== ""} onClick=${() => act("purge", matching)}>Purge all matching</button>
    </form>
    ${message && html`<p id="dlq-message">${message}</p>`}
    <table>
      <thead><tr><th></th><th>id</th><th>topic</th><th>reason</th><th>attempts</th><th>dead at</th><th>error</th></tr></thead>
      <tbody>
        ${result.letters.map(
          (l) => html`<tr data-letter=${l.id}>
            <td><input type="checkbox" checked=${selected.has(l.id)} onChange=${() => toggle(l.id)} /></td>
            <td>${l.id}</td><td>${l.channel ? `${l.topic} · ${l.channel}` : l.topic}</td><td>${l.reason ?? "?"}</td><td>${l.attempts ?? "–"}</td>
            <td>${l.deadAt ? new Date(l.deadAt).toISOString().replace(".000", "") : "–"}</td>
            <td>${l.error}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

function RuleEditor({ api, topic }) {
  const path = topic === undefined ? "/v1/rules" : `/v1/topics/${encodeURIComponent(topic)}/rules`;
  const [state, setState] = useState(undefined);
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const [saved, setSaved] = useState("");
  const load = useCallback(async () => {
    const r = await api("GET", path);
    if (!r.ok) return setError(r.json.error ?? `failed (${r.status})`);
    setState(r.json);
    setText(JSON.stringify(r.json.rule, null, 2));
  }, [api, path]);
  useEffect(() => void load(), [path]);
  const save = async () => {
    setSaved("");
    let patch;
    try {
      patch = JSON.parse(text);
    } catch (err) {
      return setError(`not JSON: ${err.message}; nothing was changed`);
    }
    const r = await api("PUT", path, patch);
    if (!r.ok) return setError(r.json.error ?? `failed (${r.status})`);
    setError("");
    setSaved("saved");
    await load();
  };
  const pause = async (paused) => {
    const base = topic === undefined ? "/v1" : `/v1/topics/${encodeURIComponent(topic)}`;
    const r = await api("POST", `${base}/${paused ? "pause" : "resume"}`);
    if (!r.ok) setError(r.json.error ?? `failed (${r.status})`);
    await load();
  };
  const name = topic ?? "default";
  return html`<div class="rule" data-rules=${name}>
    <div class="row"><b>${name}</b> <span class="muted">${state ? `from ${state.from}` : ""}</span>
      <span class=${state?.paused ? "warn" : "ok"} data-paused>${state?.paused ? `paused (${state.paused.scope === "all" ? "all topics" : "this topic"})` : "running"}</span></div>
    <textarea name="rule" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
    <div class="row">
      <button type="button" onClick=${save}>Save</button>
      <button type="button" class="secondary" onClick=${() => pause(!state?.paused)}>${state?.paused ? "Resume" : "Pause"}</button>
      <span class="ok">${saved}</span>
    </div>
    ${error && html`<pre class="error" data-error>${error}</pre>`}
  </div>`;
}

function Rules({ api, topics }) {
  return html`<section id="rules">
    <h2>Rules</h2>
    <p class="muted">A change is merged over the rule in force, checked as <code>herald rules set</code> checks it, and takes effect on every node within about a second.</p>
    <div class="rules">${[undefined, ...topics].map((t) => html`<${RuleEditor} key=${t ?? "(default)"} api=${api} topic=${t} />`)}</div>
  </section>`;
}

function Collectors({ collectors }) {
  if (collectors.length === 0) return null;
  return html`<section id="collectors">
    <h2>Collectors</h2>
    <table>
      <thead><tr><th>name</th><th>kind</th><th>state</th><th>node</th><th>last success</th><th>lag</th><th>collected</th></tr></thead>
      <tbody>
        ${collectors.map(
          (c) => html`<tr><td>${c.name}</td><td>${c.kind}</td><td class=${c.state === "ok" ? "ok" : c.state === "failing" ? "error" : "warn"}>${c.state}${c.lastError ? `: ${c.lastError}` : ""}</td>
            <td>${c.node ?? "–"}</td><td>${c.lastSuccessAt ?? "–"}</td><td>${age(c.lagMs)}</td><td>${c.collected}</td></tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

function App() {
  const [needToken, setNeedToken] = useState(false);
  const [generation, setGeneration] = useState(0);
  const unauthorized = useCallback(() => setNeedToken(true), []);
  const api = useApi(unauthorized);
  const { update, problem, history } = useLive(unauthorized, generation);
  if (needToken) return html`<${SignIn} onSignedIn=${() => { setNeedToken(false); setGeneration(generation + 1); }} />`;
  return html`<div>
    <header><h1>Herald</h1><span class="muted">${update ? `node ${update.node} · updated ${new Date(update.at).toLocaleTimeString()}` : "connecting…"}</span>
      ${problem && html`<span class="error" id="problem">${problem}</span>`}</header>
    ${update && html`<${Cluster} status=${update.status} />`}
    ${update && html`<${Charts} update=${update} history=${history} />`}
    ${update && html`<${DeadLetters} api=${api} deadCount=${update.status.exceptions.dead} />`}
    ${update && html`<${Rules} api=${api} topics=${update.topicNames} />`}
    ${update && html`<${Collectors} collectors=${update.status.collectors ?? []} />`}
  </div>`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
