/**
 * A TCP proxy for partition drills: forwards a local port to a target (a nats-server).
 *
 * `freeze()` stops forwarding bytes in both directions but keeps every socket open, which is what
 * a real network partition looks like to the peers: their requests hang until they time out,
 * instead of failing fast on a closed connection (which is what killing the proxy would do).
 * Bytes sent meanwhile wait in the socket buffers and flow again on `thaw()`, so the protocol
 * stream stays intact.
 */
import { createServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

export interface TcpProxy {
  /** Local address clients connect to. */
  host: string;
  port: number;
  /** Stops forwarding in both directions; connections made meanwhile are held too. */
  freeze(): void;
  /** Forwards again, starting with what was held. */
  thaw(): void;
  /** Connections open now (client side). */
  connections(): number;
  /** Closes the listener and every connection. Idempotent. */
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<Socket>();
  let frozen = false;

  // Forwarding by hand rather than with pipe(): pipe() resumes its source on 'drain', which would
  // let bytes through a freeze.
  const forward = (from: Socket, to: Socket) => {
    from.on("data", (chunk) => {
      if (!to.write(chunk)) from.pause();
    });
    to.on("drain", () => {
      if (!frozen) from.resume();
    });
  };

  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => {
        sockets.delete(s);
        pairs.delete(client);
        client.destroy();
        upstream.destroy();
      });
    }
    pairs.add(client);
    forward(client, upstream);
    forward(upstream, client);
    if (frozen) {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    host: address,
    port,
    freeze: () => {
      frozen = true;
      for (const s of sockets) s.pause();
    },
    thaw: () => {
      frozen = false;
      for (const s of sockets) s.resume();
    },
    connections: () => pairs.size,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      })),
  };
}
