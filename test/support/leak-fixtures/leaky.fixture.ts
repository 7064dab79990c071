import { createServer } from 'node:net';
import { it } from 'vitest';

it('opens a server and an unref’d interval and forgets both', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  setInterval(() => {}, 60_000).unref();
});
