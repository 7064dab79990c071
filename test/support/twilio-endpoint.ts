import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { eventually } from './eventually.ts';

export type TwilioBehaviour = 201 | 400 | 401 | 429 | 500 | 503 | 'hang';

export interface TwilioRequest {
  accountSid: string;
  to: string;
  from: string;
  body: string;
  /** Basic-auth user (the account SID). */
  authUser: string | null;
  status: TwilioBehaviour;
  atMs: number;
}

export interface TwilioEndpoint {
  /** Base URL to give the client (alerts.twilio.apiBaseUrl). */
  url: string;
  requests: TwilioRequest[];
  /** Requests answered 201 (messages the "carrier" accepted). */
  accepted(): TwilioRequest[];
  /** Answers for the next requests, in order; after that, `fallback` (201 by default). */
  respondWith(...behaviours: TwilioBehaviour[]): void;
  fallback: TwilioBehaviour;
  waitFor(predicate: (r: TwilioRequest[]) => boolean, timeoutMs?: number): Promise<TwilioRequest[]>;
  /** Listens for request arrivals (benchmarks). */
  onRequest: ((r: TwilioRequest) => void) | null;
  stop(): Promise<void>;
}

/**
 * A loopback HTTP server speaking the part of Twilio's REST API the bridge uses:
 * POST /2010-04-01/Accounts/{AccountSid}/Messages.json (form-encoded To, From, Body).
 * It can accept (201), refuse (400: invalid number), fail (500) or never answer (hang).
 */
export async function startTwilioEndpoint(): Promise<TwilioEndpoint> {
  const requests: TwilioRequest[] = [];
  const script: TwilioBehaviour[] = [];
  const sockets = new Set<Socket>();
  let seq = 0;
  const endpoint: TwilioEndpoint = {
    url: '',
    requests,
    accepted: () => requests.filter((r) => r.status === 201),
    respondWith: (...b) => script.push(...b),
    fallback: 201,
    onRequest: null,
    waitFor(predicate, timeoutMs = 10_000) {
      return eventually(
        () => predicate(requests) && requests,
        timeoutMs,
        `twilio endpoint: condition (${requests.length} so far)`,
      );
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const m = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !m) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ code: 20404, message: 'The requested resource was not found', status: 404 }));
      return;
    }
    const form = new URLSearchParams(raw);
    const auth = req.headers.authorization?.startsWith('Basic ')
      ? (Buffer.from(req.headers.authorization.slice(6), 'base64').toString().split(':')[0] ?? null)
      : null;
    const status = script.shift() ?? endpoint.fallback;
    const r: TwilioRequest = {
      accountSid: decodeURIComponent(m[1]!),
      to: form.get('To') ?? '',
      from: form.get('From') ?? '',
      body: form.get('Body') ?? '',
      authUser: auth,
      status,
      atMs: Date.now(),
    };
    requests.push(r);
    endpoint.onRequest?.(r);
    if (status === 'hang') return; // never answers; the socket is destroyed on stop()
    const json = (code: number, body: unknown) =>
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (status === 201) {
      const sid = `SM${String(++seq).padStart(32, '0')}`;
      json(201, {
        sid,
        account_sid: r.accountSid,
        to: r.to,
        from: r.from,
        body: r.body,
        status: 'queued',
        num_segments: '1',
        direction: 'outbound-api',
        api_version: '2010-04-01',
        date_created: new Date().toUTCString(),
        uri: `/2010-04-01/Accounts/${r.accountSid}/Messages/${sid}.json`,
      });
    } else if (status === 400) {
      json(400, {
        code: 21211,
        message: `The 'To' number ${r.to} is not a valid phone number.`,
        more_info: 'https://www.twilio.com/docs/errors/21211',
        status: 400,
      });
    } else {
      json(status, { code: 20500, message: 'Internal Server Error', status });
    }
  };

  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => handle(req, res, raw));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.address();
  endpoint.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return endpoint;
}
