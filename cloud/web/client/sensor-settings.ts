// A sensor's detection settings as the sensor reports them (its retained status), the admin's
// form to change them remotely, and the audit list of every command with who sent it and what
// the sensor answered. The page says "applied" only when the sensor said so.

import type { DetectionOverrides, EffectiveDetection } from '../../../protocol/messages.ts';
import type { CommandRecord } from '../../control/command-log.ts';
import type { SensorView } from '../types.ts';
import { ApiError, get, post } from './api.ts';
import { h } from './dom.ts';
import { isAdmin } from './shell.ts';

type Key = keyof DetectionOverrides;
const FIELDS: { key: Key; label: string; min: number; max: number; step: number; help: string }[] = [
  {
    key: 'threshold',
    label: 'Threshold',
    min: 0.05,
    max: 0.99,
    step: 0.01,
    help: 'window probability that counts as a hit',
  },
  { key: 'k', label: 'Confirm k', min: 1, max: 16, step: 1, help: 'hits needed…' },
  { key: 'n', label: 'of n windows', min: 1, max: 16, step: 1, help: '…within this many windows' },
  {
    key: 'levelGateDbfs',
    label: 'Level gate (dBFS)',
    min: -120,
    max: 0,
    step: 1,
    help: 'quieter windows are not scored',
  },
  {
    key: 'reportThreshold',
    label: 'Near-miss reports',
    min: 0.05,
    max: 0.99,
    step: 0.01,
    help: 'empty = off; runs over this that never confirm are reported',
  },
];

function value(d: EffectiveDetection, key: Key): string {
  const v = d[key];
  return v === null || v === undefined ? 'off' : String(v);
}

/** The settings in force, each marked as the config file's or an admin's remote override. */
function settingsTable(d: EffectiveDetection | null | undefined): HTMLElement {
  if (!d)
    return h(
      'p',
      { class: 'muted', id: 'settings-unknown' },
      'This sensor has not reported its detection settings (an older daemon, or it has not been online since).',
    );
  return h(
    'table',
    { class: 'settings', id: 'settings-table' },
    h(
      'tbody',
      {},
      ...FIELDS.map((f) =>
        h(
          'tr',
          { 'data-key': f.key },
          h('th', {}, f.label),
          h('td', { class: 'mono' }, value(d, f.key)),
          h(
            'td',
            {},
            d.remote.includes(f.key)
              ? h('span', { class: 'badge badge-warn' }, 'remote')
              : h('span', { class: 'badge' }, 'config'),
          ),
        ),
      ),
    ),
  );
}

const COMMAND_LABEL: Record<string, string> = {
  'set-detection': 'Detection settings',
  'set-model': 'Model',
  reload: 'Reload config file',
  ping: 'Ping',
};

function what(c: CommandRecord): string {
  if (c.command === 'set-detection') {
    const entries = Object.entries(c.detection ?? {});
    return entries.length === 0
      ? 'clear remote settings (back to the config file)'
      : entries.map(([k, v]) => `${k} ${v === null ? 'off' : v}`).join(', ');
  }
  if (c.command === 'set-model') return c.model ? `model ${c.model.version}` : '';
  return '';
}

/** What is known of a command, in the words an operator needs; nothing claimed that was not answered. */
export function commandOutcome(c: CommandRecord, sensorOnline: boolean): { text: string; kind: string } {
  if (c.result?.ok)
    return {
      text: `Applied by the sensor ${new Date(c.result.at).toLocaleString()}${c.result.message ? `: ${c.result.message}` : ''}`,
      kind: 'ok',
    };
  if (c.result)
    return {
      text: `Refused by the sensor (${c.result.code ?? 'error'}): ${c.result.message ?? ''}`,
      kind: 'bad',
    };
  if (c.state === 'send-failed')
    return { text: `Not sent: ${c.sendError ?? 'the broker did not take it'}`, kind: 'bad' };
  if (c.state === 'sending') return { text: 'Sending…', kind: 'wait' };
  return sensorOnline
    ? { text: 'Sent; waiting for the sensor to answer', kind: 'wait' }
    : { text: 'Queued: the sensor is offline and gets it when it reconnects', kind: 'wait' };
}

function auditRow(c: CommandRecord, online: boolean): HTMLTableRowElement {
  const o = commandOutcome(c, online);
  return h(
    'tr',
    { 'data-command-id': c.commandId, 'data-state': c.state },
    h('td', {}, new Date(c.issuedAt).toLocaleString()),
    h('td', {}, c.issuedBy),
    h('td', {}, COMMAND_LABEL[c.command] ?? c.command),
    h('td', { class: 'small' }, what(c)),
    h('td', { class: `outcome outcome-${o.kind}` }, o.text),
  );
}

export interface SensorSettingsPanel {
  element: HTMLElement;
  sensor(v: SensorView): void;
  command(c: CommandRecord): void;
}

/** The "Detection settings" card of a sensor page. */
export function sensorSettings(initial: SensorView): SensorSettingsPanel {
  let sensor = initial;
  const records = new Map<string, CommandRecord>();
  const tableHost = h('div', { id: 'settings-host' }, settingsTable(sensor.detection));
  const auditBody = h('tbody', { id: 'audit-body' });
  const auditEmpty = h('p', { class: 'muted small', id: 'audit-empty' }, 'No remote changes yet.');
  const status = h('p', { class: 'small', id: 'command-status', role: 'status' });
  let watching: string | null = null;

  const paintAudit = () => {
    const rows = [...records.values()].sort(
      (a, b) => b.issuedAt.localeCompare(a.issuedAt) || b.commandId.localeCompare(a.commandId),
    );
    auditBody.replaceChildren(...rows.map((r) => auditRow(r, sensor.status === 'online')));
    auditEmpty.hidden = rows.length > 0;
    const w = watching ? records.get(watching) : undefined;
    if (w) {
      const o = commandOutcome(w, sensor.status === 'online');
      status.textContent = o.text;
      status.className = `small outcome outcome-${o.kind}`;
    }
  };

  const sendCommand = async (body: { command: string; detection?: DetectionOverrides }) => {
    status.textContent = 'Sending…';
    status.className = 'small outcome outcome-wait';
    try {
      const r = await post<{ command: CommandRecord }>(
        `/api/sensors/${encodeURIComponent(sensor.id)}/commands`,
        body,
      );
      records.set(r.command.commandId, r.command);
      watching = r.command.commandId;
      paintAudit();
    } catch (err) {
      status.textContent = err instanceof ApiError ? err.message : 'Cannot send the command.';
      status.className = 'small outcome outcome-bad';
    }
  };

  let form: HTMLFormElement | null = null;
  if (isAdmin()) {
    const inputs = new Map<Key, HTMLInputElement>();
    const d = sensor.detection;
    form = h(
      'form',
      { class: 'settings-form', id: 'settings-form', novalidate: true },
      ...FIELDS.map((f) => {
        const input = h('input', {
          type: 'number',
          name: f.key,
          min: f.min,
          max: f.max,
          step: f.step,
          value: d ? (d[f.key] === null ? '' : String(d[f.key])) : '',
          'aria-describedby': `help-${f.key}`,
        });
        inputs.set(f.key, input);
        return h(
          'label',
          {},
          h('span', {}, f.label),
          input,
          h('span', { class: 'small muted', id: `help-${f.key}` }, f.help),
        );
      }),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'submit', class: 'btn', id: 'settings-apply' }, 'Send to sensor'),
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-ghost',
            id: 'settings-clear',
            onclick: () => void sendCommand({ command: 'set-detection', detection: {} }),
          },
          'Back to config file',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-ghost',
            id: 'sensor-ping',
            onclick: () => void sendCommand({ command: 'ping' }),
          },
          'Ping',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-ghost',
            id: 'sensor-reload',
            onclick: () => void sendCommand({ command: 'reload' }),
          },
          'Reload config file',
        ),
      ),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      // The overrides wanted: what is already remote plus every field changed in the form.
      const current = sensor.detection;
      const overrides: Record<string, number | null> = {};
      for (const f of FIELDS) {
        const raw = inputs.get(f.key)!.value.trim();
        const v = raw === '' ? null : Number(raw);
        if (v !== null && !Number.isFinite(v)) {
          status.textContent = `${f.label}: not a number`;
          status.className = 'small outcome outcome-bad';
          return;
        }
        if (v === null && f.key !== 'reportThreshold') continue; // only near-miss reports can be "off"
        const was = current ? current[f.key] : undefined;
        if (v !== was || current?.remote.includes(f.key)) overrides[f.key] = v;
      }
      void sendCommand({ command: 'set-detection', detection: overrides as DetectionOverrides });
    });
  }

  const element = h(
    'section',
    { class: 'card span-2', id: 'detection-settings' },
    h('h2', {}, 'Detection settings'),
    h('p', { class: 'muted small', id: 'settings-model' }, `Model ${sensor.modelVersion ?? 'unknown'}.`),
    tableHost,
    form,
    status,
    h('h3', {}, 'Changes'),
    h(
      'table',
      { class: 'audit', id: 'audit-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', {}, 'When'),
          h('th', {}, 'Who'),
          h('th', {}, 'Command'),
          h('th', {}, 'What'),
          h('th', {}, 'Outcome'),
        ),
      ),
      auditBody,
    ),
    auditEmpty,
  );

  void get<{ commands: CommandRecord[] }>(`/api/sensors/${encodeURIComponent(sensor.id)}/commands`)
    .then((r) => {
      for (const c of r.commands) if (!records.has(c.commandId)) records.set(c.commandId, c);
      paintAudit();
    })
    .catch((err: unknown) => {
      auditEmpty.textContent = err instanceof ApiError ? err.message : 'Cannot load the changes.';
    });
  paintAudit();

  return {
    element,
    sensor(v) {
      sensor = v;
      tableHost.replaceChildren(settingsTable(v.detection));
      paintAudit();
    },
    command(c) {
      if (c.sensorId !== sensor.id) return;
      records.set(c.commandId, c);
      paintAudit();
    },
  };
}
