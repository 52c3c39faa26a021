// A TCP proxy for the browser tests, in front of the `sushi` binary: it delays every chunk by
// `delayMs` in each direction (so 100 ms gives a 200 ms round trip, a slow mobile link), and
// `cut()` destroys the connections open at that moment (a network drop the browser sees as a
// reset) while new connections still get through (the network is back).
import net from 'node:net';

export async function startProxy({ host, port, delayMs = 0 }) {
  const sockets = new Set();
  const forward = (from, to) => {
    from.on('data', (chunk) => {
      const send = () => { if (!to.destroyed) to.write(chunk); };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => to.destroy());
    from.on('close', () => setTimeout(() => to.destroy(), delayMs));
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.setNoDelay(true);
    }
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Drop every open connection at once (RST to both sides). */
    cut() {
      const n = sockets.size;
      for (const s of sockets) s.resetAndDestroy();
      return n;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
