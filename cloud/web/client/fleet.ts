import type { SensorView } from '../types.ts';
import { ApiError, get } from './api.ts';
import { clear, h } from './dom.ts';
import { clockSkew, dateTime, db, relative } from './format.ts';
import { liveStream } from './live-stream.ts';

/** A sensor clock further off than this is shown on its card (event times come from it). */
const CLOCK_WARN_S = 60;

const ORDER: Record<SensorView['status'], number> = { offline: 0, unknown: 2, online: 3 };
/** As the API sorts: offline, then online-but-deaf, unknown, online. */
const rank = (s: SensorView): number => (s.degraded ? 1 : ORDER[s.status]);

function stat(label: string, value: string, warn = false): HTMLElement {
  return h(
    'div',
    { class: `stat${warn ? ' stat-warn' : ''}` },
    h('span', { class: 'stat-label' }, label),
    h('span', { class: 'stat-value' }, value),
  );
}

export function sensorCard(s: SensorView): HTMLElement {
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
    s.clockSkewS != null && Math.abs(s.clockSkewS) > CLOCK_WARN_S
      ? h(
          'p',
          { class: 'health-warning clock-skew' },
          `Sensor clock ${clockSkew(s.clockSkewS)}: check its time sync (NTP)`,
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
      h(
        'span',
        {},
        h('a', { href: `/sensors/${encodeURIComponent(s.id)}`, class: 'sensor-link' }, 'Details'),
        ' · ',
        h('a', { href: `/events?sensorId=${encodeURIComponent(s.id)}` }, 'Events →'),
      ),
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
  const sensors = new Map<string, SensorView>();
  let at = new Date();
  const paint = () => {
    const list = [...sensors.values()].sort((a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id));
    const counts = { online: 0, offline: 0, unknown: 0, degraded: 0 };
    for (const s of list) {
      counts[s.status]++;
      if (s.degraded) counts.degraded++;
    }
    clear(
      summary,
      h('div', { class: 'count count-online' }, h('strong', {}, String(counts.online)), ' online'),
      h(
        'div',
        { class: `count count-offline${counts.offline ? ' has' : ''}` },
        h('strong', {}, String(counts.offline)),
        ' offline',
      ),
      counts.degraded
        ? h(
            'div',
            { class: 'count count-degraded has' },
            h('strong', {}, String(counts.degraded)),
            ' cannot hear',
          )
        : null,
      counts.unknown
        ? h('div', { class: 'count count-unknown' }, h('strong', {}, String(counts.unknown)), ' unknown')
        : null,
    );
    if (list.length === 0) {
      clear(
        grid,
        h(
          'div',
          { class: 'card empty' },
          h('strong', {}, 'No sensors yet'),
          h('p', { class: 'muted' }, 'Sensors appear here when they first connect to the broker.'),
        ),
      );
    } else clear(grid, ...list.map(sensorCard));
    document.getElementById('fleet-updated')!.textContent = `updated ${at.toLocaleTimeString()}`;
  };
  async function load(): Promise<string | null> {
    const r = await get<{ sensors: SensorView[]; at: string; liveCursor: string }>('/api/sensors');
    sensors.clear();
    for (const s of r.sensors) sensors.set(s.id, s);
    at = new Date(r.at);
    paint();
    return r.liveCursor;
  }
  let cursor: string | null = null;
  try {
    cursor = await load();
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
  const banner = document.getElementById('outage-banner');
  // pushed: a sensor going offline or deaf shows at once, without polling
  liveStream(cursor).on({
    sensor(s) {
      sensors.set(s.id, s);
      at = new Date();
      paint();
    },
    reset: () => void load().catch(() => undefined),
    poll: () =>
      load().then(
        () => true,
        () => false,
      ),
    state(s, since) {
      if (!banner) return;
      banner.hidden = s !== 'offline';
      banner.textContent = since
        ? `Cannot reach the server since ${since.toLocaleTimeString()}; showing the last known state. Retrying…`
        : '';
    },
  });
}
