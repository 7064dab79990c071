import type { StoredEvent } from '../../store/types.ts';
import type { SensorView } from '../types.ts';
import { ApiError, get } from './api.ts';
import { clear, h, toast } from './dom.ts';
import { dateTime, kind, pct, relative, response, sourceTitle, verdict } from './format.ts';
import { EventMap } from './map.ts';

type EventSummary = Omit<StoredEvent, 'windows' | 'features'> & { hasWindows: boolean };

const POLL_MS = 5000;
const PAGE = 100;

function badge(b: { label: string; tone: string }): HTMLElement {
  return h('span', { class: `badge badge-${b.tone}` }, b.label);
}

function eventRow(e: EventSummary, sensors: Map<string, SensorView>): HTMLElement {
  const k = kind(e);
  const sensor = sensors.get(e.sensorId);
  const title = sourceTitle(e, sensor?.name);
  const place = e.location.room ?? sensor?.room ?? e.location.address ?? null;
  const where = place && place !== title ? place : null;
  return h(
    'a',
    {
      class: `event-row tone-${k.tone}`,
      href: `/events/${encodeURIComponent(e.eventId)}`,
      'data-event-id': e.eventId,
    },
    h('span', { class: 'event-dot', 'aria-hidden': 'true' }),
    h(
      'span',
      { class: 'event-main' },
      h(
        'span',
        { class: 'event-title' },
        badge(k),
        h('strong', {}, title),
        where ? h('span', { class: 'muted' }, ` · ${where}`) : null,
      ),
      h(
        'span',
        { class: 'event-meta' },
        h('time', { datetime: e.timestamp, title: dateTime(e.timestamp) }, relative(e.timestamp)),
        h('span', {}, `${pct(e.screamProbability)} probability`),
        e.location.latitude === null ? h('span', { class: 'muted' }, 'no location') : null,
      ),
    ),
    h(
      'span',
      { class: 'event-status' },
      badge(response(e.responseStatus)),
      e.review ? badge(verdict(e.review.verdict)) : null,
    ),
  );
}

export async function initEvents(main: HTMLElement): Promise<void> {
  const tileUrl = document.body.dataset.tileUrl ?? '';
  const params = new URLSearchParams(location.search);
  const sensorSelect = h(
    'select',
    { name: 'sensorId', 'aria-label': 'Sensor' },
    h('option', { value: '' }, 'All sensors'),
  );
  const from = h('input', { type: 'datetime-local', name: 'from', 'aria-label': 'From' });
  const to = h('input', { type: 'datetime-local', name: 'to', 'aria-label': 'To' });
  const screamsOnly = h('input', { type: 'checkbox', name: 'isScream' });
  if (params.get('from')) from.value = params.get('from')!;
  if (params.get('to')) to.value = params.get('to')!;
  screamsOnly.checked = params.get('isScream') === 'true';
  const list = h('div', { class: 'event-list', id: 'event-list', 'aria-live': 'polite' });
  const count = h('span', { class: 'muted', id: 'event-count' });
  const mapEl = h('div', { class: 'map', id: 'event-map' });
  const mapNote = h('p', { class: 'map-note muted', id: 'map-note' });
  const form = h(
    'form',
    { class: 'filters', id: 'filters' },
    h('label', {}, h('span', {}, 'Sensor'), sensorSelect),
    h('label', {}, h('span', {}, 'From'), from),
    h('label', {}, h('span', {}, 'To'), to),
    h('label', { class: 'check' }, screamsOnly, h('span', {}, 'Screams only')),
    h('button', { class: 'btn', type: 'reset' }, 'Clear'),
  );
  clear(
    main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Events'), count),
    form,
    h(
      'div',
      { class: 'events-layout' },
      h('section', { class: 'card list-card' }, list),
      h('section', { class: 'card map-card' }, mapEl, mapNote),
    ),
  );
  const map = new EventMap(mapEl, tileUrl);

  const sensors = new Map<string, SensorView>();
  try {
    const r = await get<{ sensors: SensorView[] }>('/api/sensors');
    for (const s of r.sensors) {
      sensors.set(s.id, s);
      sensorSelect.append(h('option', { value: s.id }, s.name ? `${s.name} (${s.id})` : s.id));
    }
  } catch {
    // the list still works without sensor names
  }
  const wanted = params.get('sensorId');
  if (wanted) {
    if (!sensors.has(wanted)) sensorSelect.append(h('option', { value: wanted }, wanted));
    sensorSelect.value = wanted;
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastKey: string | null = null;
  /** Pages loaded with "Show older": kept below the auto-refreshed first page. */
  let older: EventSummary[] = [];
  /** undefined: no older page loaded yet (continue from the first page's cursor); null: no more. */
  let olderCursor: string | null | undefined;
  let firstPageCursor: string | null = null;
  const cursor = () => (olderCursor === undefined ? firstPageCursor : olderCursor);
  const moreBtn = h(
    'button',
    { class: 'btn btn-block', type: 'button', id: 'show-older' },
    'Show older events',
  );

  const filterQuery = (): URLSearchParams => {
    const q = new URLSearchParams();
    if (sensorSelect.value) q.set('sensorId', sensorSelect.value);
    if (from.value) q.set('from', new Date(from.value).toISOString());
    if (to.value) q.set('to', new Date(to.value).toISOString());
    if (screamsOnly.checked) q.set('isScream', 'true');
    q.set('limit', String(PAGE));
    return q;
  };

  const render = (first: EventSummary[]) => {
    const seen = new Set(first.map((e) => e.eventId));
    const events = [...first, ...older.filter((e) => !seen.has(e.eventId))];
    if (events.length === 0) {
      clear(
        list,
        h(
          'div',
          { class: 'empty' },
          h('strong', {}, 'No events'),
          h(
            'p',
            { class: 'muted' },
            'Nothing matches these filters. New detections appear here automatically.',
          ),
        ),
      );
    } else {
      clear(list, ...events.map((e) => eventRow(e, sensors)));
      if (cursor()) list.append(moreBtn);
    }
    const onMap = map.show(events);
    mapNote.textContent =
      events.length === 0
        ? ''
        : onMap === events.length
          ? `${onMap} on the map`
          : `${onMap} of ${events.length} have a location`;
    return events.length;
  };

  let firstPage: EventSummary[] = [];
  async function load(): Promise<void> {
    clearTimeout(timer);
    try {
      const r = await get<{ events: EventSummary[]; total: number; nextBefore: string | null }>(
        `/api/events?${filterQuery()}`,
      );
      firstPage = r.events;
      firstPageCursor = r.nextBefore;
      const key = r.events
        .map((e) => `${e.eventId}:${e.responseStatus}:${e.review?.verdict ?? ''}`)
        .join('|');
      let shown = firstPage.length + older.length;
      if (key !== lastKey) {
        lastKey = key;
        shown = render(firstPage);
      }
      count.textContent = `${shown} shown · ${r.total} stored`;
    } catch (err) {
      clear(
        list,
        h(
          'div',
          { class: 'empty error' },
          err instanceof ApiError ? err.message : 'Cannot reach the server; retrying…',
        ),
      );
      lastKey = null;
    }
    timer = setTimeout(load, POLL_MS);
  }

  moreBtn.addEventListener('click', async () => {
    const before = cursor();
    if (!before) return;
    moreBtn.disabled = true;
    try {
      const q = filterQuery();
      q.set('before', before);
      const r = await get<{ events: EventSummary[]; nextBefore: string | null }>(`/api/events?${q}`);
      const have = new Set(older.map((e) => e.eventId));
      older = [...older, ...r.events.filter((e) => !have.has(e.eventId))];
      olderCursor = r.nextBefore;
      render(firstPage);
    } catch (err) {
      toast(err instanceof ApiError ? err.message : 'Cannot load older events', 'error');
    } finally {
      moreBtn.disabled = false;
    }
  });

  const sync = () => {
    const q = new URLSearchParams();
    if (sensorSelect.value) q.set('sensorId', sensorSelect.value);
    if (from.value) q.set('from', from.value);
    if (to.value) q.set('to', to.value);
    if (screamsOnly.checked) q.set('isScream', 'true');
    history.replaceState(null, '', q.size ? `?${q}` : location.pathname);
    lastKey = null;
    older = [];
    olderCursor = undefined;
    void load();
  };
  form.addEventListener('change', sync);
  form.addEventListener('reset', () => setTimeout(sync, 0));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sync();
  });
  await load();
  map.invalidate();
}
