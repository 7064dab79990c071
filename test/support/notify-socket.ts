import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export interface NotifySocket {
  /** Value for NOTIFY_SOCKET. */
  path: string;
  /** Every datagram received, split into its KEY=VALUE lines. */
  messages: string[];
  stop(): Promise<void>;
}

// Node cannot bind AF_UNIX datagram sockets; Python (in every Debian image) can.
const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data = s.recv(4096)
    for line in data.decode("utf-8", "replace").splitlines():
        if line:
            print(line, flush=True)
`;

/** A stand-in for systemd's notify socket: records what sd_notify(3) sends. */
export async function startNotifySocket(dir: string): Promise<NotifySocket> {
  const path = join(dir, 'notify.sock');
  const child: ChildProcess = spawn('python3', ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: string[] = [];
  let buf = '';
  let err = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`notify socket listener did not start: ${err}`)), 5000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        if (l === 'listening') {
          clearTimeout(timer);
          resolve();
        } else messages.push(l);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await ready;
  return {
    path,
    messages,
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
