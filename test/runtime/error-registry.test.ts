import { describe, expect, it } from 'vitest';
import { DeliveryError } from '../../cloud/alerts/senders.ts';
import { CloudError } from '../../cloud/errors.ts';
import { WebError } from '../../cloud/web/errors.ts';
import { AudioDecodeError } from '../../core/audio/errors.ts';
import { DaemonError } from '../../daemon/errors.ts';
import {
  codedError,
  ERRORS,
  errorSpec,
  exitCodeFor,
  formatError,
  httpStatusFor,
  isConfigError,
  ScreamwatchError,
} from '../../protocol/errors.ts';

describe('the error registry', () => {
  it('decides exit codes: 78 for configuration, 2 for usage, 1 for the rest and for foreign errors', () => {
    expect(exitCodeFor(new DaemonError('CONFIG_INVALID', 'x'))).toBe(78);
    expect(exitCodeFor(new DaemonError('MQTT_TLS_FILE_UNREADABLE', 'x'))).toBe(78);
    expect(exitCodeFor(new AudioDecodeError('AUDIO_EMPTY', 'a.wav', 'no audio'))).toBe(78);
    expect(exitCodeFor(new CloudError('CLOUD_TLS_FILE_UNREADABLE', 'x'))).toBe(78);
    expect(exitCodeFor(new CloudError('CLOUD_CONFIG_INVALID', 'x'))).toBe(78);
    expect(exitCodeFor(new ScreamwatchError('DEMO_USAGE', 'x'))).toBe(2);
    // a port in use may be free after a restart: systemd should retry
    expect(exitCodeFor(new CloudError('CLOUD_BROKER_LISTEN_FAILED', 'x'))).toBe(1);
    expect(exitCodeFor(new DaemonError('ALSA_OPEN_FAILED', 'x'))).toBe(1);
    expect(exitCodeFor(new ScreamwatchError('NOT_REGISTERED', 'x'))).toBe(1);
    expect(exitCodeFor(Object.assign(new Error('x'), { code: 'CONFIG_INVALID' }))).toBe(1);
    expect(isConfigError(new DaemonError('OUTBOX_OPEN_FAILED', 'x'))).toBe(true);
    expect(isConfigError(new DaemonError('OUTBOX_FULL', 'x'))).toBe(false);
  });

  it('gives HTTP statuses: the dashboard codes, undecodable audio 422, the former CLOUD_USAGE meanings', () => {
    expect(new WebError('WEB_RATE_LIMITED', 'x').statusCode).toBe(429);
    expect(new WebError('WEB_UNAUTHENTICATED', 'x').statusCode).toBe(401);
    expect(new WebError('WEB_LISTEN_FAILED', 'x').statusCode).toBe(500);
    expect(httpStatusFor(new AudioDecodeError('AUDIO_CORRUPT', 'a.mp3', 'no frames'))).toBe(422);
    expect(httpStatusFor(new CloudError('STORE_CURSOR_INVALID', 'x'))).toBe(400);
    expect(httpStatusFor(new CloudError('EVENT_NOT_FOUND', 'x'))).toBe(404);
    expect(httpStatusFor(new Error('boom'))).toBe(500);
    expect(errorSpec('ENOENT')).toBeUndefined();
    expect(errorSpec('toString')).toBeUndefined();
  });

  it('codes delivery failures by whether they are retried', () => {
    expect(new DeliveryError('HTTP 503', true, 503)).toMatchObject({ code: 'ALERT_DELIVERY_RETRYABLE' });
    expect(new DeliveryError('HTTP 400', false, 400)).toMatchObject({ code: 'ALERT_DELIVERY_REFUSED' });
    expect(new DeliveryError('x', true)).toBeInstanceOf(ScreamwatchError);
  });

  it('fills message templates from the context, keeping names it has no value for', () => {
    expect(formatError('CLOUD_BROKER_LISTEN_FAILED', { host: '0.0.0.0', port: 1883 })).toBe(
      'embedded broker cannot listen on 0.0.0.0:1883',
    );
    expect(formatError('MQTT_TLS_FILE_UNREADABLE', { key: 'certFile' })).toBe(
      'mqtt.certFile: cannot read {file}',
    );
    expect(codedError('EVENT_NOT_FOUND', { eventId: '01J' })).toMatchObject({
      code: 'EVENT_NOT_FOUND',
      message: 'event 01J not found',
      context: { eventId: '01J' },
    });
  });

  it('keeps the code strings logs, tests and the README rely on', () => {
    for (const code of [
      'ALSA_OPEN_FAILED',
      'MQTT_AUTH_REFUSED',
      'MQTT_CONNECT_FAILED',
      'OUTBOX_FULL',
      'MQTT_PAYLOAD_INVALID',
      'CLOUD_CONFIG_INVALID',
      'CONFIG_INVALID',
      'WEB_RATE_LIMITED',
    ])
      expect(Object.hasOwn(ERRORS, code)).toBe(true);
    expect(Object.hasOwn(ERRORS, 'CLOUD_USAGE')).toBe(false);
  });
});
