// The Models page: the models the bridge can hand to sensors, an upload form and batch
// rollouts (admins), and the progress of the rollouts, polled while one runs.
import type { ModelEntry } from '../../control/model-library.ts';
import type { Rollout } from '../../control/model-rollout.ts';
import type { SensorView } from '../types.ts';
import { ApiError, get, post } from './api.ts';
import { clear, h, toast } from './dom.ts';
import { dateTime } from './format.ts';

/** How often the page looks at a running rollout. */
const POLL_MS = 2000;

const message = (err: unknown) => (err instanceof ApiError ? err.message : 'Cannot reach the server');

export async function initModels(main: HTMLElement): Promise<void> {
  const admin = document.body.dataset.role === 'admin';
  const modelsBox = h('div', { id: 'models-list' });
  const rolloutsBox = h('div', { id: 'rollouts-list' });
  let sensors: SensorView[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;

  const uploadForm = admin
    ? h(
        'form',
        {
          id: 'model-upload',
          class: 'card',
          onsubmit: async (e: Event) => {
            e.preventDefault();
            const form = e.target as HTMLFormElement;
            const file = (form.elements.namedItem('file') as HTMLInputElement).files?.[0];
            if (!file) return;
            const body = new FormData();
            body.append('file', file);
            try {
              const r = await post<{ model: ModelEntry; created: boolean }>('/api/models', body);
              toast(
                r.created ? `Model ${r.model.version} uploaded` : `Model ${r.model.version} is already known`,
              );
              form.reset();
              await refresh();
            } catch (err) {
              toast(message(err), 'error');
            }
          },
        },
        h('h2', {}, 'Upload a model'),
        h(
          'p',
          { class: 'muted small' },
          'A model file from `screamwatch train`; it must load with this version.',
        ),
        h('input', { type: 'file', name: 'file', accept: '.json,application/json', required: true }),
        h('button', { type: 'submit', class: 'btn btn-primary' }, 'Upload'),
      )
    : null;

  function rolloutForm(m: ModelEntry): HTMLElement {
    const groups = [...new Set(sensors.map((s) => (s as { group?: string }).group ?? 'default'))];
    const target = h(
      'select',
      { name: 'target', 'aria-label': 'Roll out to' },
      h('option', { value: 'all' }, 'All sensors'),
      ...groups.map((g) => h('option', { value: `group:${g}` }, `Group ${g}`)),
      ...sensors.map((s) => h('option', { value: `sensor:${s.id}` }, `Sensor ${s.name ?? s.id}`)),
    );
    const batch = h('input', {
      type: 'number',
      name: 'batchSize',
      min: 1,
      max: 100,
      value: 1,
      'aria-label': 'Batch size',
    });
    return h(
      'form',
      {
        class: 'rollout-form',
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const v = target.value;
          const body = {
            batchSize: Number(batch.value) || 1,
            ...(v === 'all'
              ? { all: true }
              : v.startsWith('group:')
                ? { group: v.slice(6) }
                : { sensorIds: [v.slice(7)] }),
          };
          try {
            await post(`/api/models/${m.sha256}/rollout`, body);
            toast(`Rollout of ${m.version} started`);
            await refresh();
          } catch (err) {
            toast(message(err), 'error');
          }
        },
      },
      target,
      h('label', { class: 'small' }, 'batch ', batch),
      h('button', { type: 'submit', class: 'btn' }, 'Roll out'),
    );
  }

  function paintModels(models: ModelEntry[]): void {
    const running = new Map<string, number>();
    for (const s of sensors)
      if (s.modelVersion) running.set(s.modelVersion, (running.get(s.modelVersion) ?? 0) + 1);
    clear(
      modelsBox,
      h(
        'table',
        { class: 'table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Version', 'Sensors on it', 'Size', 'sha256', 'Added', ''].map((t) => h('th', {}, t)),
          ),
        ),
        h(
          'tbody',
          {},
          ...models.map((m) =>
            h(
              'tr',
              { 'data-sha256': m.sha256 },
              h('td', {}, m.version),
              h('td', {}, String(running.get(m.version) ?? 0)),
              h('td', {}, `${Math.round(m.size / 1024)} KB`),
              h('td', { class: 'mono small', title: m.sha256 }, m.sha256.slice(0, 12)),
              h(
                'td',
                { class: 'small' },
                m.source === 'shipped'
                  ? 'shipped with the bridge'
                  : `${dateTime(m.uploadedAt)} by ${m.uploadedBy}`,
              ),
              h('td', {}, admin ? rolloutForm(m) : null),
            ),
          ),
        ),
      ),
    );
  }

  function paintRollouts(rollouts: Rollout[]): void {
    if (rollouts.length === 0) {
      clear(rolloutsBox, h('p', { class: 'muted' }, 'No rollout since the bridge started.'));
      return;
    }
    clear(
      rolloutsBox,
      ...rollouts.map((r) =>
        h(
          'article',
          { class: `card rollout rollout-${r.state}`, 'data-rollout-id': r.rolloutId },
          h(
            'h3',
            {},
            `${r.version} · ${r.state} · batch ${r.batchSize} · by ${r.startedBy} at ${dateTime(r.startedAt)}`,
          ),
          h(
            'ul',
            {},
            ...r.sensors.map((s) =>
              h(
                'li',
                { 'data-state': s.state },
                `${s.sensorId}: ${s.state}`,
                s.code ? ` (${s.code}${s.message ? `: ${s.message}` : ''})` : '',
              ),
            ),
          ),
        ),
      ),
    );
  }

  async function refresh(): Promise<void> {
    clearTimeout(timer);
    const [m, r, f] = await Promise.all([
      get<{ models: ModelEntry[] }>('/api/models'),
      get<{ rollouts: Rollout[] }>('/api/rollouts'),
      get<{ sensors: SensorView[] }>('/api/sensors'),
    ]);
    sensors = f.sensors;
    paintModels(m.models);
    paintRollouts(r.rollouts);
    if (r.rollouts.some((x) => x.state === 'running'))
      timer = setTimeout(() => void refresh().catch(() => undefined), POLL_MS);
  }

  clear(
    main,
    h('h1', {}, 'Models'),
    h(
      'p',
      { class: 'muted' },
      'A rollout goes one batch at a time and stops at the first sensor that refuses, is offline or does not report the new version.',
    ),
    modelsBox,
    uploadForm,
    h('h2', {}, 'Rollouts'),
    rolloutsBox,
  );
  try {
    await refresh();
  } catch (err) {
    clear(modelsBox, h('div', { class: 'card empty error' }, message(err)));
  }
}
