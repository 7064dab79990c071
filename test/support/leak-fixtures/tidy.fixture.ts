import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { afterAll, beforeAll, it } from 'vitest';

const server = createServer();

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // closed by the cleanup vitest runs after every afterAll: the check must wait for it
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
});

const interval = setInterval(() => {}, 60_000);
afterAll(() => clearInterval(interval));

it('closes what it opens, or lets it finish soon after', async () => {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  const file = await open(new URL(import.meta.url));
  await file.close();
  const timer = setTimeout(() => {}, 60_000);
  clearTimeout(timer);
  const { port } = server.address() as { port: number };
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.destroy();
  // still pending when the file ends: the bounded wait lets it run out
  setTimeout(() => {}, 300);
});
