/**
 * A TCP proxy in front of a database server that passes the server's answers at a set rate:
 * a slow network link, so that a dump takes seconds however fast the machine (a progress bar
 * is seen moving). What the client sends goes through at full speed.
 */
import net from 'node:net';

export interface ThrottleProxy {
  port: number;
  close(): Promise<void>;
}

export async function startThrottleProxy(target: { host: string; port: number }, bytesPerSecond: number): Promise<ThrottleProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    // Each chunk earns its pause: the next read waits until the chunk's time at the rate is up.
    let due = Date.now();
    upstream.on('data', (chunk: Buffer) => {
      due = Math.max(due, Date.now()) + (chunk.length / bytesPerSecond) * 1000;
      const ok = client.write(chunk);
      const wait = due - Date.now();
      if (wait > 0 || !ok) {
        upstream.pause();
        const resume = () => setTimeout(() => upstream.resume(), Math.max(0, due - Date.now()));
        if (ok) resume();
        else client.once('drain', resume);
      }
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
