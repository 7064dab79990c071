import { createServer } from 'node:net';

/**
 * A loopback TCP port that was free a moment ago. For servers that cannot listen on port 0
 * themselves (Mosquitto) or that a test must restart on the same port (a broker coming back).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
