import nodemailer from 'nodemailer';
import twilio from 'twilio';
import { ScreamwatchError } from '../../protocol/errors.ts';
import type { CloudConfig } from '../config/schema.ts';
import type { AlertMessage } from './alert-text.ts';

export type Channel = 'sms' | 'email';

/**
 * A failed attempt: `transient` (5xx, timeout, connection refused; ALERT_DELIVERY_RETRYABLE) is
 * retried, the rest (ALERT_DELIVERY_REFUSED) is not.
 */
export class DeliveryError extends ScreamwatchError {
  declare readonly code: 'ALERT_DELIVERY_RETRYABLE' | 'ALERT_DELIVERY_REFUSED';
  constructor(
    message: string,
    readonly transient: boolean,
    readonly status: number | null = null,
  ) {
    super(transient ? 'ALERT_DELIVERY_RETRYABLE' : 'ALERT_DELIVERY_REFUSED', message, { status });
    this.name = 'DeliveryError';
  }
}

export interface ChannelSender {
  readonly channel: Channel;
  send(to: string, message: AlertMessage): Promise<{ providerId: string | null }>;
  close(): void;
}

const TRANSIENT_NET = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ESOCKET',
  'ECONNECTION',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** SMS through the official twilio client. `apiBaseUrl` only redirects it (tests, a proxy). */
export class TwilioSmsSender implements ChannelSender {
  readonly channel = 'sms' as const;
  private readonly client: ReturnType<typeof twilio>;

  constructor(
    private readonly cfg: CloudConfig['alerts']['twilio'] & {
      accountSid: string;
      authToken: string;
      from: string;
    },
    timeoutMs: number,
  ) {
    const base = cfg.apiBaseUrl?.replace(/\/+$/, '') ?? null;
    // The client's own RequestClient (axios), with the URI rewritten when a base URL is set:
    // the request, auth and response parsing stay exactly the library's.
    class RedirectingClient extends twilio.RequestClient {
      override request<T>(opts: Parameters<twilio.RequestClient['request']>[0]) {
        const uri = base ? opts.uri.replace(/^https:\/\/[^/]+/, base) : opts.uri;
        return super.request<T>({ ...opts, uri, timeout: timeoutMs } as Parameters<
          twilio.RequestClient['request']
        >[0] as never);
      }
    }
    this.client = twilio(cfg.accountSid, cfg.authToken, {
      httpClient: new RedirectingClient({ timeout: timeoutMs, keepAlive: false }),
      autoRetry: false,
    });
  }

  async send(to: string, message: AlertMessage): Promise<{ providerId: string | null }> {
    try {
      const m = await this.client.messages.create({
        to,
        from: this.cfg.from,
        body: message.text.slice(0, 1500),
      });
      return { providerId: m.sid ?? null };
    } catch (err) {
      throw classifyHttp(err);
    }
  }

  close(): void {}
}

function classifyHttp(err: unknown): DeliveryError {
  const e = err as { status?: number; code?: string | number; message?: string };
  if (typeof e.status === 'number') {
    // 429 (rate limited) and 5xx heal; other 4xx (bad number, bad credentials) will not.
    const transient = e.status >= 500 || e.status === 429;
    return new DeliveryError(`HTTP ${e.status}: ${e.message ?? ''}`.trim(), transient, e.status);
  }
  const code = typeof e.code === 'string' ? e.code : '';
  const isTimeout = code === 'ECONNABORTED' || /timeout/i.test(e.message ?? '');
  return new DeliveryError(
    `${isTimeout ? 'timeout' : code || 'network error'}: ${e.message ?? String(err)}`,
    isTimeout || TRANSIENT_NET.has(code) || !code,
  );
}

/** Email through nodemailer over SMTP (Gmail app passwords work, any SMTP server). */
export class SmtpEmailSender implements ChannelSender {
  readonly channel = 'email' as const;
  private readonly transport: ReturnType<typeof nodemailer.createTransport>;

  constructor(
    private readonly cfg: CloudConfig['alerts']['smtp'] & { host: string; from: string },
    timeoutMs: number,
  ) {
    this.transport = nodemailer.createTransport({
      host: cfg.host,
      port: cfg.port,
      secure: cfg.secure,
      auth: cfg.user ? { user: cfg.user, pass: cfg.pass ?? '' } : undefined,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    });
  }

  async send(to: string, message: AlertMessage): Promise<{ providerId: string | null }> {
    try {
      const info = await this.transport.sendMail({
        from: this.cfg.from,
        to,
        subject: message.subject,
        text: message.text,
        html: message.html,
      });
      return { providerId: info.messageId ?? null };
    } catch (err) {
      const e = err as { responseCode?: number; code?: string; message?: string };
      if (typeof e.responseCode === 'number') {
        // SMTP: 4xx replies are temporary, 5xx permanent (the opposite of HTTP's meaning).
        return Promise.reject(
          new DeliveryError(
            `SMTP ${e.responseCode}: ${e.message ?? ''}`,
            e.responseCode < 500,
            e.responseCode,
          ),
        );
      }
      return Promise.reject(
        new DeliveryError(`${e.code ?? 'SMTP error'}: ${e.message ?? String(err)}`, e.code !== 'EAUTH'),
      );
    }
  }

  close(): void {
    this.transport.close();
  }
}

/** Senders for the configured channels; a channel without credentials is absent (recorded as not-configured). */
export function createSenders(alerts: CloudConfig['alerts']): Partial<Record<Channel, ChannelSender>> {
  const out: Partial<Record<Channel, ChannelSender>> = {};
  const t = alerts.twilio;
  if (t.accountSid && t.authToken && t.from) {
    out.sms = new TwilioSmsSender(
      { ...t, accountSid: t.accountSid, authToken: t.authToken, from: t.from },
      alerts.timeoutMs,
    );
  }
  const s = alerts.smtp;
  if (s.host && s.from)
    out.email = new SmtpEmailSender({ ...s, host: s.host, from: s.from }, alerts.timeoutMs);
  return out;
}
