import { expect } from 'vitest';
import type { CommandRecord } from '../../cloud/control/command-log.ts';
import { eventually } from '../support/eventually.ts';

export interface ApiSession {
  cookie: string;
  csrf: string;
}

/** Signs in to the bridge's dashboard API; the cookie and CSRF token for later requests. */
export async function apiLogin(
  web: string,
  user: { username: string; password: string },
): Promise<ApiSession> {
  const res = await fetch(`${web}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(user),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { csrfToken: string };
  return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, csrf: body.csrfToken };
}

/** Waits until the sensor's answer to a command is on its audit record; returns the record. */
export function commandAnswered(
  audit: (sensorId: string) => Promise<CommandRecord[]>,
  sensorId: string,
  commandId: string,
  timeoutMs = 15_000,
): Promise<CommandRecord> {
  return eventually(
    async () => {
      const r = (await audit(sensorId)).find((c) => c.commandId === commandId);
      return r?.result ? r : null;
    },
    timeoutMs,
    `the sensor's answer to ${commandId}`,
  );
}
