import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** One readiness check: ok, or why not (shown in /healthz so an operator sees what is wrong). */
export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

export type Readiness = Record<string, ReadinessCheck>;

export interface OpsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** Runs every check; a check that throws counts as not ready with its message. */
  readiness: () => Promise<Readiness>;
  logger: Logger;
}

/** Body of /healthz: 200 when every check is ok, 503 otherwise. */
export async function readinessBody(
  readiness: () => Promise<Readiness>,
): Promise<{ status: number; body: { ok: boolean; checks: Readiness } }> {
  let checks: Readiness;
  try {
    checks = await readiness();
  } catch (err) {
    checks = { readiness: { ok: false, detail: (err as Error).message } };
  }
  const ok = Object.values(checks).every((c) => c.ok);
  return { status: ok ? 200 : 503, body: { ok, checks } };
}

/**
 * The operations endpoint of a process (bridge or daemon): `/metrics` (Prometheus text format,
 * prom-client), `/healthz` (readiness: 503 with the failing checks) and `/livez` (the event
 * loop answers). Plain node:http, no auth: it listens on an operator-chosen address, loopback
 * by default, never the dashboard's public port.
 */
export class OpsServer {
  private server: Server | null = null;
  url = '';

  constructor(private readonly options: OpsServerOptions) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.options.logger.error({ err }, 'ops endpoint failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const a = server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    this.url = `http://${host}:${a.port}`;
    this.options.logger.info(
      { url: this.url },
      'metrics and health endpoint listening (/metrics, /healthz, /livez)',
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      const text = await this.options.registry.metrics();
      res.writeHead(200, { 'content-type': this.options.registry.contentType });
      res.end(text);
      return;
    }
    if (path === '/healthz') {
      const { status, body } = await readinessBody(this.options.readiness);
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
      });
      res.end(JSON.stringify(body));
      return;
    }
    if (path === '/livez') {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end('{"ok":true}');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: /metrics, /healthz, /livez\n');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
