// One sensor: its card as on the fleet page (updated live), where it is, and its events per
// day over the last 7 days. Detection settings become visible (and editable by admins) with
// the fleet control plane; until then the page says so rather than showing guesses.
import type { SensorView } from '../types.ts';
import { ApiError, get } from './api.ts';
import { clear, h, s } from './dom.ts';
import { sensorCard } from './fleet.ts';
import { type EventSummary, liveStream } from './live-stream.ts';
import { EventMap } from './map.ts';

const DAYS = 7;

function dayKey(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** Bars of screams and near misses per local day. */
function perDayChart(events: EventSummary[], now: Date): SVGSVGElement {
  const days: { key: string; label: string; screams: number; other: number }[] = [];
  for (let i = DAYS - 1; i >= 0; i--) {
    const d = new Date(now.getFullYear(), now.getMonth(), now.getDate() - i);
    days.push({
      key: dayKey(d),
      label: d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric' }),
      screams: 0,
      other: 0,
    });
  }
  for (const e of events) {
    const day = days.find((d) => d.key === dayKey(new Date(e.timestamp)));
    if (!day) continue;
    if (e.isScream) day.screams++;
    else day.other++;
  }
  const W = 560;
  const H = 160;
  const max = Math.max(1, ...days.map((d) => d.screams + d.other));
  const bw = W / DAYS;
  const svg = s('svg', {
    viewBox: `0 -18 ${W} ${H + 42}`,
    class: 'plot per-day',
    role: 'img',
    'aria-label': 'Events per day',
  });
  days.forEach((d, i) => {
    const hs = (d.screams / max) * H;
    const ho = (d.other / max) * H;
    svg.append(
      s('rect', {
        x: i * bw + 8,
        y: H - hs,
        width: bw - 16,
        height: hs,
        class: 'bar-scream',
        'data-day': d.key,
        'data-count': d.screams,
      }),
    );
    svg.append(s('rect', { x: i * bw + 8, y: H - hs - ho, width: bw - 16, height: ho, class: 'bar-other' }));
    svg.append(s('text', { x: i * bw + bw / 2, y: H + 16, class: 'tick', 'text-anchor': 'middle' }, d.label));
    if (d.screams + d.other > 0)
      svg.append(
        s(
          'text',
          { x: i * bw + bw / 2, y: H - hs - ho - 4, class: 'tick', 'text-anchor': 'middle' },
          String(d.screams + d.other),
        ),
      );
  });
  return svg;
}

export async function initSensor(main: HTMLElement): Promise<void> {
  const id = document.body.dataset.sensorId ?? '';
  let sensor: SensorView;
  try {
    sensor = (await get<{ sensor: SensorView }>(`/api/sensors/${encodeURIComponent(id)}`)).sensor;
  } catch (err) {
    clear(
      main,
      h('a', { href: '/fleet', class: 'back' }, '← Fleet'),
      h(
        'div',
        { class: 'card empty error' },
        err instanceof ApiError ? err.message : 'Cannot load the sensor',
      ),
    );
    return;
  }
  const cardHost = h('div', { class: 'sensor-grid', id: 'sensor-card' }, sensorCard(sensor));
  const chartHost = h('div', { class: 'plot-wrap', id: 'events-per-day' });
  const mapEl = h('div', { class: 'map map-small', id: 'sensor-map' });
  const loc = sensor.location;
  const hasPoint = typeof loc?.latitude === 'number' && typeof loc?.longitude === 'number';
  clear(
    main,
    h('a', { href: '/fleet', class: 'back' }, '← Fleet'),
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, sensor.name ?? sensor.id),
      h('span', { class: 'muted mono' }, sensor.id),
    ),
    h(
      'div',
      { class: 'detail-grid' },
      h('section', { class: 'card' }, h('h2', {}, 'Status'), cardHost),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Location'),
        hasPoint
          ? mapEl
          : h('p', { class: 'muted' }, 'No location configured for this sensor (sensors[].location).'),
        loc?.address ? h('p', {}, loc.address) : null,
      ),
      h(
        'section',
        { class: 'card span-2' },
        h('h2', {}, `Events per day (last ${DAYS} days)`),
        chartHost,
        h(
          'p',
          { class: 'small muted' },
          h(
            'a',
            { href: `/events?sensorId=${encodeURIComponent(sensor.id)}` },
            'All events of this sensor →',
          ),
        ),
      ),
      h(
        'section',
        { class: 'card span-2', id: 'detection-settings' },
        h('h2', {}, 'Detection settings'),
        h(
          'p',
          { class: 'muted' },
          `Model ${sensor.modelVersion ?? 'unknown'}. Threshold and confirmation are set in the sensor's daemon config; they show here read-only once the sensor reports them.`,
        ),
      ),
    ),
  );
  if (hasPoint) {
    const map = new EventMap(mapEl, document.body.dataset.tileUrl ?? '');
    map.showPoint(loc!.latitude!, loc!.longitude!, sensor.name ?? sensor.id);
  }
  const now = new Date();
  const from = new Date(now.getFullYear(), now.getMonth(), now.getDate() - (DAYS - 1)).toISOString();
  const events: EventSummary[] = [];
  let liveCursor: string | null = null;
  try {
    let before: string | null = null;
    // bounded: at most 10 pages of 500
    for (let i = 0; i < 10; i++) {
      const q = new URLSearchParams({ sensorId: sensor.id, from, limit: '500' });
      if (before) q.set('before', before);
      const r = await get<{ events: EventSummary[]; nextBefore: string | null; liveCursor: string }>(
        `/api/events?${q}`,
      );
      liveCursor ??= r.liveCursor;
      events.push(...r.events);
      before = r.nextBefore;
      if (!before) break;
    }
  } catch {
    chartHost.append(h('p', { class: 'error-text' }, 'Cannot load the events of this sensor.'));
  }
  const seen = new Set(events.map((e) => e.eventId));
  const paint = () => chartHost.replaceChildren(perDayChart(events, new Date()));
  paint();
  liveStream(liveCursor).on({
    sensor(v) {
      if (v.id === sensor.id) cardHost.replaceChildren(sensorCard(v));
    },
    event(e) {
      if (e.sensorId !== sensor.id || seen.has(e.eventId)) return;
      seen.add(e.eventId);
      events.push(e);
      paint();
    },
  });
}
