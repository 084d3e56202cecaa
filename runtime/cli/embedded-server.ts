/**
 * The embedded nats-server of `herald start`: started before the nodes, restarted (same port, same
 * store dir) when it dies while the cluster runs, and stopped after the nodes have drained. The
 * nodes reconnect on their own.
 *
 * Restarts follow the supervisor's restart policy: the first at once, then backing off; more than
 * {@link SERVER_RESTARTS}.intensity deaths within its period mean a restart will not fix it, and
 * the cluster is stopped with a line saying why.
 */
import { join } from "node:path";
import type { LoadedConfig } from "../config/index.js";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { writeEmbeddedServerConfig } from "../nats/embedded.js";
import { startNatsServer, type NatsServerHandle } from "../nats/server.js";
import { monotonicNow } from "../platform/index.js";
import { RestartPolicy, type RestartOptions } from "../supervisor/restart-policy.js";

export const SERVER_RESTARTS: RestartOptions = { initialDelayMs: 0, maxDelayMs: 5_000, intensity: 5, periodMs: 60_000 };

export interface EmbeddedServerOptions {
  log: Logger;
  /** Each server process's pid, as soon as it is spawned (the watchdog's `watch`). */
  onSpawn: (pid: number) => void;
  /** The server cannot be kept running: the cluster must stop; `reason` says why. */
  onGiveUp: (reason: string) => void;
}

export class EmbeddedServer {
  private stopping = false;
  private restarting: Promise<void> | undefined;

  private constructor(
    private readonly handle: NatsServerHandle,
    private readonly opts: EmbeddedServerOptions,
  ) {}

  /** Starts the server and keeps it running until {@link stop}. */
  static async start(loaded: LoadedConfig, opts: EmbeddedServerOptions): Promise<EmbeddedServer> {
    const { config } = loaded;
    // With nats.auth, the server is set up to ask for it (and to give each role its permissions).
    const configFile = await writeEmbeddedServerConfig(config);
    if (configFile) opts.log.info("embedded nats-server requires credentials", { config: configFile });
    const handle = await startNatsServer({
      ...(configFile ? { configFile } : {}),
      host: config.nats.host,
      port: config.nats.port,
      storeDir: config.nats.storeDir,
      serverName: `herald-${config.cluster}`,
      logFile: join(config.nats.storeDir, "nats-server.log"),
      // Its own process group: Ctrl-C reaches the nodes, which drain through NATS before we stop it.
      detached: true,
      onSpawn: opts.onSpawn,
      ownerRole: "herald launcher",
    });
    opts.log.info("embedded nats-server ready", { url: handle.url, storeDir: config.nats.storeDir, pid: handle.pid });
    const server = new EmbeddedServer(handle, opts);
    void server.keep();
    return server;
  }

  /** Stops the server (after a restart in progress has settled). Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.restarting?.catch(() => undefined);
    await this.handle.stop();
  }

  private async keep(): Promise<void> {
    const { log } = this.opts;
    const policy = new RestartPolicy(SERVER_RESTARTS);
    let why = await this.death();
    while (!this.stopping) {
      const decision = policy.onCrash(monotonicNow());
      if (decision.action === "fail") {
        const reason = `embedded nats-server ${why}, its ${decision.crashes}th failure within ${SERVER_RESTARTS.periodMs / 1000} s: stopping the cluster`;
        log.error(reason);
        this.opts.onGiveUp(reason);
        return;
      }
      const when = decision.delayMs > 0 ? ` in ${decision.delayMs} ms` : "";
      log.warn(`embedded nats-server ${why}: restarting it${when}`, { restart: policy.recent(monotonicNow()), of: SERVER_RESTARTS.intensity });
      if (decision.delayMs > 0) await new Promise((r) => setTimeout(r, decision.delayMs));
      if (this.stopping) return;
      this.restarting = this.handle.restart();
      try {
        await this.restarting;
        log.info("embedded nats-server restarted", { url: this.handle.url, pid: this.handle.pid });
        why = await this.death();
      } catch (err) {
        why = `could not be restarted (${errorText(err).split("\n")[0]})`;
      } finally {
        this.restarting = undefined;
      }
    }
  }

  /** Waits for the current server process to end; says how it ended. */
  private async death(): Promise<string> {
    const pid = this.handle.pid;
    const code = await this.handle.exited;
    return `(pid ${pid}) died (${this.handle.exitSignal ?? `exit code ${code}`})`;
  }
}
