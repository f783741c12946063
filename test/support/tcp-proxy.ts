import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** Loopback port to point a client at instead of the target's. */
  port: number;
  /**
   * From now on every byte in either direction is swallowed and new connections are accepted and
   * never answered: the target looks alive at the TCP level and never says anything, as behind a
   * partition or a firewall that drops packets.
   */
  blackHole(): void;
  /**
   * From now on every byte of the connections open now is swallowed, both ways, and they stay open;
   * connections opened later are forwarded: a client's old connections hang, as behind a failover
   * that left them to a host that is gone, while new ones reach the server.
   */
  blackHoleOpen(): void;
  /** From now on bytes are kept back (a stall) until release() delivers them in order. */
  stall(): void;
  release(): void;
  /** Destroys every connection (both sides) and stops listening. */
  close(): Promise<void>;
}

type Mode = 'forward' | 'stall' | 'black-hole';

/** A TCP forwarder to `host:port` for fault tests: it can stall or black-hole the traffic. */
export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  let mode: Mode = 'forward';
  const sockets = new Set<Socket>();
  const kept: [Socket, Buffer][] = [];
  const holed = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const pass = (from: Socket, to: Socket, chunk: Buffer): void => {
    if (holed.has(from)) return;
    if (mode === 'forward') to.write(chunk);
    else if (mode === 'stall') kept.push([to, chunk]);
  };
  const server: Server = createServer((client) => {
    track(client);
    if (mode === 'black-hole') {
      client.resume();
      return;
    }
    const upstream = connect(port, host);
    track(upstream);
    client.on('data', (chunk: Buffer) => pass(client, upstream, chunk));
    upstream.on('data', (chunk: Buffer) => pass(upstream, client, chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    blackHole() {
      mode = 'black-hole';
    },
    blackHoleOpen() {
      for (const socket of sockets) holed.add(socket);
    },
    stall() {
      mode = 'stall';
    },
    release() {
      mode = 'forward';
      for (const [to, chunk] of kept.splice(0)) if (!to.destroyed) to.write(chunk);
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
