import type { SensorView } from '../types.ts';
import { ApiError, get } from './api.ts';
import { clear, h } from './dom.ts';
import { dateTime, db, relative } from './format.ts';

const POLL_MS = 10_000;

function stat(label: string, value: string, warn = false): HTMLElement {
  return h(
    'div',
    { class: `stat${warn ? ' stat-warn' : ''}` },
    h('span', { class: 'stat-label' }, label),
    h('span', { class: 'stat-value' }, value),
  );
}

function sensorCard(s: SensorView): HTMLElement {
  const statusLabel = s.degraded
    ? `Online · ${s.health}`
    : s.status === 'online'
      ? 'Online'
      : s.status === 'offline'
        ? 'Offline'
        : 'Unknown';
  const quiet = typeof s.inputLevelDbfs === 'number' && s.inputLevelDbfs < -85;
  // amber: online, but the microphone is silent, stuck, clipping or missing (it would miss a scream)
  const look = s.degraded ? 'degraded' : s.status;
  return h(
    'article',
    { class: `sensor-card status-${look}`, 'data-sensor-id': s.id, 'data-health': s.health ?? '' },
    h(
      'header',
      {},
      h(
        'div',
        {},
        h('h2', {}, s.name ?? s.id),
        h(
          'p',
          { class: 'muted small' },
          [s.name ? s.id : null, s.room].filter(Boolean).join(' · ') || '\u00a0',
        ),
      ),
      h(
        'span',
        {
          class: `status-pill status-pill-${look}`,
          ...(s.degraded && s.healthSince && { title: `since ${dateTime(s.healthSince)}` }),
        },
        statusLabel,
      ),
    ),
    s.degraded
      ? h(
          'p',
          { class: 'health-warning' },
          `Cannot hear: input ${s.health} since ${dateTime(s.healthSince ?? null)}`,
        )
      : null,
    h(
      'div',
      { class: 'stats' },
      stat('Last seen', relative(s.lastSeen), s.status !== 'online'),
      stat('Outbox', s.outboxDepth === null ? '–' : `${s.outboxDepth} queued`, (s.outboxDepth ?? 0) > 0),
      stat('Input level', db(s.inputLevelDbfs), quiet),
      stat(
        'Dropped frames',
        s.droppedFrames === null ? '–' : String(s.droppedFrames),
        (s.droppedFrames ?? 0) > 0,
      ),
      stat('Model', s.modelVersion ?? '–'),
      stat('Last event', s.lastEventAt ? relative(s.lastEventAt) : 'none'),
    ),
    h(
      'footer',
      {},
      h(
        'span',
        { class: 'muted small', title: dateTime(s.lastSeen) },
        s.location?.address ?? (s.lastSeen ? `Seen ${dateTime(s.lastSeen)}` : 'Never seen'),
      ),
      h('a', { href: `/events?sensorId=${encodeURIComponent(s.id)}` }, 'Events →'),
    ),
  );
}

export async function initFleet(main: HTMLElement): Promise<void> {
  const summary = h('div', { class: 'fleet-summary', id: 'fleet-summary' });
  const grid = h('div', { class: 'sensor-grid', id: 'sensor-grid' });
  clear(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Fleet'),
      h('span', { class: 'muted', id: 'fleet-updated' }),
    ),
    summary,
    grid,
  );
  async function load(): Promise<void> {
    try {
      const r = await get<{
        sensors: SensorView[];
        counts: Record<SensorView['status'], number> & { degraded?: number };
        at: string;
      }>('/api/sensors');
      clear(
        summary,
        h('div', { class: 'count count-online' }, h('strong', {}, String(r.counts.online)), ' online'),
        h(
          'div',
          { class: `count count-offline${r.counts.offline ? ' has' : ''}` },
          h('strong', {}, String(r.counts.offline)),
          ' offline',
        ),
        r.counts.degraded
          ? h(
              'div',
              { class: 'count count-degraded has' },
              h('strong', {}, String(r.counts.degraded)),
              ' cannot hear',
            )
          : null,
        r.counts.unknown
          ? h('div', { class: 'count count-unknown' }, h('strong', {}, String(r.counts.unknown)), ' unknown')
          : null,
      );
      if (r.sensors.length === 0) {
        clear(
          grid,
          h(
            'div',
            { class: 'card empty' },
            h('strong', {}, 'No sensors yet'),
            h('p', { class: 'muted' }, 'Sensors appear here when they first connect to the broker.'),
          ),
        );
      } else clear(grid, ...r.sensors.map(sensorCard));
      document.getElementById('fleet-updated')!.textContent =
        `updated ${new Date(r.at).toLocaleTimeString()}`;
    } catch (err) {
      clear(
        grid,
        h(
          'div',
          { class: 'card empty error' },
          err instanceof ApiError ? err.message : 'Cannot reach the server; retrying…',
        ),
      );
    }
    setTimeout(load, POLL_MS);
  }
  await load();
}
