import { SMTPServer } from 'smtp-server';
import { eventually } from './eventually.ts';

export interface ReceivedMail {
  from: string | null;
  to: string[];
  /** The raw RFC 5322 message (headers + MIME body). */
  raw: string;
  atMs: number;
}

export interface SmtpHarness {
  host: string;
  port: number;
  mails: ReceivedMail[];
  waitFor(predicate: (m: ReceivedMail[]) => boolean, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** Answer the next N messages with this SMTP reply code (e.g. 451 temporary, 550 permanent). */
  rejectNext(n: number, code: number): void;
  stop(): Promise<void>;
}

/** A real SMTP server (smtp-server) on loopback, no TLS, accepting any login. */
export async function startSmtp(options: { port?: number } = {}): Promise<SmtpHarness> {
  const mails: ReceivedMail[] = [];
  let rejects: { n: number; code: number } = { n: 0, code: 0 };
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    onAuth: (_auth, _session, cb) => cb(null, { user: 'test' }),
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (rejects.n > 0) {
          rejects.n -= 1;
          const err = Object.assign(
            new Error(rejects.code >= 500 ? 'mailbox unavailable' : 'try again later'),
            { responseCode: rejects.code },
          );
          return cb(err);
        }
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
          atMs: Date.now(),
        });
        cb();
      });
    },
    logger: false,
  });
  server.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const addr = server.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    host: '127.0.0.1',
    port,
    mails,
    rejectNext(n, code) {
      rejects = { n, code };
    },
    waitFor(predicate, timeoutMs = 10_000) {
      return eventually(
        () => predicate(mails) && mails,
        timeoutMs,
        `smtp server: condition (${mails.length} so far)`,
      );
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Decodes a quoted-printable / base64 MIME message enough to search its text. */
export function mailText(raw: string): string {
  const qp = raw
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
  const b64 = [
    ...raw.matchAll(/Content-Transfer-Encoding: base64\r?\n(?:[^\r\n]+\r?\n)*\r?\n([A-Za-z0-9+/=\r\n]+)/g),
  ].map((m) => Buffer.from(m[1]!.replace(/\s/g, ''), 'base64').toString('utf8'));
  return [Buffer.from(qp, 'latin1').toString('utf8'), ...b64].join('\n');
}
