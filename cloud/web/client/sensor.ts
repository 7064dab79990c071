// One sensor: its card as on the fleet page (updated live), where it is, its health history,
// its events per day over the last 7 days, and its detection settings (as the sensor reports
// them; admins change them remotely, sensor-settings.ts).
import type { HistoryBucket, HistoryPeriod } from '../../ingest/sensor-history.ts';
import type { SensorView } from '../types.ts';
import { ApiError, get } from './api.ts';
import { clear, h, s } from './dom.ts';
import { sensorCard } from './fleet.ts';
import { type EventSummary, liveStream } from './live-stream.ts';
import { EventMap } from './map.ts';
import { sensorSettings } from './sensor-settings.ts';

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

interface HistoryReply {
  range: '24h' | '7d';
  at: string;
  bucketS: number;
  buckets: HistoryBucket[];
  periods: HistoryPeriod[];
  recorded: boolean;
}

const STATE_LABEL = { online: 'online', offline: 'offline', degraded: 'cannot hear', unknown: 'unknown' };

/**
 * The last 24 h / 7 d of one sensor: a strip of its states (online, offline, cannot hear) and
 * two charts from its heartbeats: input level (min-max band, mean line) and the highest
 * window probability per bucket. A gap in the charts is time without heartbeats.
 */
export function historyChart(hist: HistoryReply): SVGSVGElement {
  const W = 720;
  const STRIP = 18;
  const CH = 90;
  const GAP = 26;
  const L = 46;
  const end = Date.parse(hist.at);
  const start = end - (hist.range === '24h' ? 86_400_000 : 7 * 86_400_000);
  const x = (ms: number) => L + ((ms - start) / (end - start)) * (W - L - 8);
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${STRIP + 2 * CH + 3 * GAP + 10}`,
    class: 'plot history',
    role: 'img',
    'aria-label': `Sensor states, input level and max probability over the last ${hist.range}`,
  });
  // states
  for (const p of hist.periods) {
    const a = x(Math.max(start, Date.parse(p.from)));
    const b = x(p.to ? Date.parse(p.to) : end);
    svg.append(
      s(
        'rect',
        {
          x: a,
          y: 0,
          width: Math.max(1, b - a),
          height: STRIP,
          class: `period period-${p.state}`,
          'data-state': p.state,
        },
        s(
          'title',
          {},
          `${STATE_LABEL[p.state]} from ${new Date(p.from).toLocaleString()}${p.to ? ` to ${new Date(p.to).toLocaleString()}` : ''}`,
        ),
      ),
    );
  }
  svg.append(s('text', { x: L - 6, y: STRIP - 5, class: 'tick', 'text-anchor': 'end' }, 'state'));
  const bucketMs = hist.bucketS * 1000;
  const series = (
    top: number,
    lo: number,
    hi: number,
    v: (b: HistoryReply['buckets'][number]) => number,
    cls: string,
    label: string,
    ticks: number[],
    fmt: (t: number) => string,
  ) => {
    const y = (val: number) => top + (1 - (Math.min(hi, Math.max(lo, val)) - lo) / (hi - lo)) * CH;
    for (const t of ticks) {
      svg.append(s('line', { x1: L, x2: W - 8, y1: y(t), y2: y(t), class: 'grid' }));
      svg.append(s('text', { x: L - 6, y: y(t) + 4, class: 'tick', 'text-anchor': 'end' }, fmt(t)));
    }
    svg.append(s('text', { x: L, y: top - 6, class: 'tick' }, label));
    // one polyline per run of consecutive buckets: no line across a silence
    let run: string[] = [];
    let prev = -Infinity;
    const flush = () => {
      if (run.length) svg.append(s('polyline', { points: run.join(' '), class: cls }));
      run = [];
    };
    for (const b of hist.buckets) {
      const at = Date.parse(b.at);
      if (at - prev > bucketMs * 1.5) flush();
      prev = at;
      run.push(`${x(at + bucketMs / 2).toFixed(1)},${y(v(b)).toFixed(1)}`);
      if (cls === 'level-line')
        svg.append(
          s('line', {
            x1: x(at + bucketMs / 2),
            x2: x(at + bucketMs / 2),
            y1: y(b.levelMaxDbfs),
            y2: y(b.levelMinDbfs),
            class: 'level-band',
          }),
        );
    }
    flush();
  };
  const top1 = STRIP + GAP;
  series(
    top1,
    -90,
    0,
    (b) => b.levelMeanDbfs,
    'level-line',
    'input level (dBFS)',
    [-90, -60, -30, 0],
    (t) => String(t),
  );
  const top2 = top1 + CH + GAP;
  series(
    top2,
    0,
    1,
    (b) => b.maxProbability,
    'prob-line',
    'max probability',
    [0, 0.5, 1],
    (t) => `${t * 100}%`,
  );
  // time axis
  const axisY = top2 + CH + 16;
  const stepMs = hist.range === '24h' ? 6 * 3_600_000 : 86_400_000;
  for (let t = Math.ceil(start / stepMs) * stepMs; t <= end; t += stepMs) {
    const d = new Date(t);
    svg.append(
      s(
        'text',
        { x: x(t), y: axisY, class: 'tick', 'text-anchor': 'middle' },
        hist.range === '24h'
          ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
          : d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric' }),
      ),
    );
  }
  return svg;
}

async function paintHistory(host: HTMLElement, id: string, range: '24h' | '7d'): Promise<void> {
  try {
    const hist = await get<HistoryReply>(`/api/sensors/${encodeURIComponent(id)}/history?range=${range}`);
    const down = hist.periods.filter((p) => p.state === 'offline' || p.state === 'degraded');
    host.replaceChildren(
      historyChart(hist),
      h(
        'p',
        { class: 'small muted', id: 'history-summary' },
        hist.buckets.length === 0
          ? `No heartbeats recorded in the last ${range}.`
          : `${hist.buckets.reduce((n, b) => n + b.n, 0)} heartbeats; ${down.length === 0 ? 'no offline or cannot-hear periods' : `${down.length} offline or cannot-hear period${down.length > 1 ? 's' : ''}`} in the last ${range}.`,
      ),
    );
  } catch (err) {
    host.replaceChildren(
      h('p', { class: 'error-text' }, err instanceof ApiError ? err.message : 'Cannot load the history.'),
    );
  }
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
  const historyHost = h('div', { class: 'plot-wrap', id: 'sensor-history' });
  const rangeButtons = (['24h', '7d'] as const).map((r) =>
    h(
      'button',
      {
        type: 'button',
        class: 'btn btn-ghost btn-small',
        'data-range': r,
        'aria-pressed': String(r === '24h'),
      },
      r === '24h' ? '24 h' : '7 days',
    ),
  );
  for (const b of rangeButtons)
    b.addEventListener('click', () => {
      for (const o of rangeButtons) o.setAttribute('aria-pressed', String(o === b));
      void paintHistory(historyHost, sensor.id, b.dataset.range as '24h' | '7d');
    });
  const settings = sensorSettings(sensor);
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
        { class: 'card span-2', id: 'history-card' },
        h(
          'div',
          { class: 'card-head' },
          h('h2', {}, 'Health'),
          h('span', { class: 'range-toggle' }, ...rangeButtons),
        ),
        historyHost,
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
      settings.element,
    ),
  );
  if (hasPoint) {
    const map = new EventMap(mapEl, document.body.dataset.tileUrl ?? '');
    map.showPoint(loc!.latitude!, loc!.longitude!, sensor.name ?? sensor.id);
  }
  void paintHistory(historyHost, sensor.id, '24h');
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
      if (v.id !== sensor.id) return;
      cardHost.replaceChildren(sensorCard(v));
      settings.sensor(v);
    },
    command(c) {
      settings.command(c);
    },
    event(e) {
      if (e.sensorId !== sensor.id || seen.has(e.eventId)) return;
      seen.add(e.eventId);
      events.push(e);
      paint();
    },
  });
}
