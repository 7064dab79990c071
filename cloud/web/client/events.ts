import type { SensorView } from '../types.ts';
import { describeAlert } from './alert-outcome.ts';
import { ApiError, get, post } from './api.ts';
import { clear, h, toast } from './dom.ts';
import { dateTime, kind, pct, relative, responseState, sourceTitle } from './format.ts';
import { type EventSummary, liveStream } from './live-stream.ts';
import { EventMap } from './map.ts';
import { isAdmin } from './shell.ts';

const PAGE = 100;

function badge(b: { label: string; tone: string; detail?: string }): HTMLElement {
  return h('span', { class: `badge badge-${b.tone}`, title: b.detail || null }, b.label);
}

function eventRow(
  e: EventSummary,
  sensors: Map<string, SensorView>,
  selectable: boolean,
  selected: Set<string>,
) {
  const k = kind(e);
  const sensor = sensors.get(e.sensorId);
  const title = sourceTitle(e, sensor?.name);
  const place = e.location.room ?? sensor?.room ?? e.location.address ?? null;
  const where = place && place !== title ? place : null;
  const link = h(
    'a',
    {
      class: `event-row tone-${k.tone}`,
      href: `/events/${encodeURIComponent(e.eventId)}`,
      'data-event-id': e.eventId,
      'data-response': e.response?.state ?? 'new',
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
      badge(describeAlert(e)),
      (() => {
        const r = responseState(e);
        return r ? badge(r) : null;
      })(),
    ),
  );
  if (!selectable) return link;
  const box = h('input', {
    type: 'checkbox',
    class: 'select-event',
    'aria-label': `Select ${title} ${dateTime(e.timestamp)}`,
    value: e.eventId,
  });
  box.checked = selected.has(e.eventId);
  box.addEventListener('change', () => {
    if (box.checked) selected.add(e.eventId);
    else selected.delete(e.eventId);
    document.dispatchEvent(new CustomEvent('selection-changed'));
  });
  return h('div', { class: 'event-item' }, h('label', { class: 'select-cell' }, box), link);
}

/** Newest first, then eventId: the order the API pages in, so merged pages stay in order. */
function newestFirst(a: EventSummary, b: EventSummary): number {
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp ? 1 : -1;
  return a.eventId < b.eventId ? 1 : a.eventId > b.eventId ? -1 : 0;
}

interface Filters {
  sensorId: string;
  from: string;
  to: string;
  isScream: boolean;
  response: string;
  verdict: string;
}

/** Whether a pushed event belongs in the list as filtered (the server applies the same rules). */
function matches(e: EventSummary, f: Filters): boolean {
  if (f.sensorId && e.sensorId !== f.sensorId) return false;
  const t = Date.parse(e.timestamp);
  if (f.from && t < Date.parse(new Date(f.from).toISOString())) return false;
  if (f.to && t > Date.parse(new Date(f.to).toISOString())) return false;
  if (f.isScream && !e.isScream) return false;
  if (f.response && (e.response?.state ?? 'new') !== f.response) return false;
  if (f.verdict && e.review?.verdict !== f.verdict) return false;
  return true;
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
  const responseSelect = h(
    'select',
    { name: 'response', 'aria-label': 'Response' },
    h('option', { value: '' }, 'Any response'),
    h('option', { value: 'new' }, 'New'),
    h('option', { value: 'acknowledged' }, 'Acknowledged'),
    h('option', { value: 'resolved' }, 'Resolved'),
  );
  const verdictSelect = h(
    'select',
    { name: 'verdict', 'aria-label': 'Verdict' },
    h('option', { value: '' }, 'Any verdict'),
    h('option', { value: 'confirmed' }, 'Confirmed'),
    h('option', { value: 'false-alarm' }, 'False alarm'),
  );
  if (params.get('from')) from.value = params.get('from')!;
  if (params.get('to')) to.value = params.get('to')!;
  screamsOnly.checked = params.get('isScream') === 'true';
  responseSelect.value = params.get('response') ?? '';
  verdictSelect.value = params.get('verdict') ?? '';
  const list = h('div', { class: 'event-list', id: 'event-list', 'aria-live': 'polite' });
  const count = h('span', { class: 'muted', id: 'event-count' });
  const mapEl = h('div', { class: 'map', id: 'event-map' });
  const mapNote = h('p', { class: 'map-note muted', id: 'map-note' });
  const formError = h('p', { class: 'form-error', id: 'filter-error', role: 'alert', hidden: true });
  const banner = document.getElementById('outage-banner') ?? h('div', { hidden: true });
  const exportLinks = h('span', { class: 'export-links' });
  const form = h(
    'form',
    { class: 'filters', id: 'filters' },
    h('label', {}, h('span', {}, 'Sensor'), sensorSelect),
    h('label', {}, h('span', {}, 'From'), from),
    h('label', {}, h('span', {}, 'To'), to),
    h('label', {}, h('span', {}, 'Response'), responseSelect),
    h('label', {}, h('span', {}, 'Verdict'), verdictSelect),
    h('label', { class: 'check' }, screamsOnly, h('span', {}, 'Screams only')),
    h('button', { class: 'btn', type: 'reset' }, 'Clear'),
    exportLinks,
  );
  const admin = isAdmin();
  const selected = new Set<string>();
  const bulkCount = h('span', { id: 'bulk-count' });
  const bulkBar = h(
    'div',
    { class: 'bulk-bar', id: 'bulk-bar', hidden: true },
    bulkCount,
    h('button', { class: 'btn', type: 'button', id: 'bulk-false-alarm' }, 'Mark as false alarm'),
    h('button', { class: 'btn btn-ghost', type: 'button', id: 'bulk-clear' }, 'Clear selection'),
  );
  const mapCard = h(
    'details',
    { class: 'card map-card', id: 'map-card', open: true },
    h('summary', {}, 'Map'),
    mapEl,
    mapNote,
  );
  clear(
    main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Events'), count),
    form,
    formError,
    bulkBar,
    h('div', { class: 'events-layout' }, h('section', { class: 'card list-card' }, list), mapCard),
  );
  // phones: the list comes first and the map starts folded (it is one tap away)
  if (window.matchMedia('(max-width: 720px)').matches) mapCard.open = false;
  const map = new EventMap(mapEl, tileUrl);
  mapCard.addEventListener('toggle', () => map.invalidate());

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

  const filters = (): Filters => ({
    sensorId: sensorSelect.value,
    from: from.value,
    to: to.value,
    isScream: screamsOnly.checked,
    response: responseSelect.value,
    verdict: verdictSelect.value,
  });

  /** Every event loaded (first page, older pages, pushed), by id: a row is never lost or doubled. */
  const events = new Map<string, EventSummary>();
  /** Where "Show older" continues: the cursor of the oldest page loaded; null: nothing older. */
  let olderCursor: string | null = null;
  let total = 0;
  let loaded = false;
  let generation = 0;
  const moreBtn = h(
    'button',
    { class: 'btn btn-block', type: 'button', id: 'show-older' },
    'Show older events',
  );

  const filterQuery = (): URLSearchParams => {
    const f = filters();
    const q = new URLSearchParams();
    if (f.sensorId) q.set('sensorId', f.sensorId);
    if (f.from) q.set('from', new Date(f.from).toISOString());
    if (f.to) q.set('to', new Date(f.to).toISOString());
    if (f.isScream) q.set('isScream', 'true');
    if (f.response) q.set('response', f.response);
    if (f.verdict) q.set('verdict', f.verdict);
    return q;
  };

  const paintExport = () => {
    const q = filterQuery();
    clear(
      exportLinks,
      'Export: ',
      h(
        'a',
        { href: `/api/events/export?${q}${q.size ? '&' : ''}format=csv`, id: 'export-csv', download: '' },
        'CSV',
      ),
      ' · ',
      h(
        'a',
        { href: `/api/events/export?${q}${q.size ? '&' : ''}format=json`, id: 'export-json', download: '' },
        'JSON',
      ),
    );
  };

  const paintBulk = () => {
    for (const id of [...selected]) if (!events.has(id)) selected.delete(id);
    bulkBar.hidden = selected.size === 0;
    bulkCount.textContent = `${selected.size} selected`;
  };
  document.addEventListener('selection-changed', paintBulk);

  let frame = 0;
  const render = () => {
    frame = 0;
    const shown = [...events.values()].sort(newestFirst);
    if (shown.length === 0) {
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
      clear(list, ...shown.map((e) => eventRow(e, sensors, admin, selected)));
      if (olderCursor) list.append(moreBtn);
    }
    const onMap = map.show(shown);
    mapNote.textContent =
      shown.length === 0
        ? ''
        : onMap === shown.length
          ? `${onMap} on the map`
          : `${onMap} of ${shown.length} have a location`;
    count.textContent = `${shown.length} shown · ${total} stored`;
    paintBulk();
  };
  const schedule = () => {
    frame ||= requestAnimationFrame(render);
  };

  const outage = (since: Date | null) => {
    if (!since) {
      banner.hidden = true;
      return;
    }
    banner.hidden = false;
    banner.textContent = `Cannot reach the server since ${since.toLocaleTimeString()}. Showing the last known events; retrying…`;
  };

  const validRange = (): boolean => {
    const f = filters();
    const bad =
      f.from && f.to && Date.parse(new Date(f.from).toISOString()) > Date.parse(new Date(f.to).toISOString());
    formError.hidden = !bad;
    formError.textContent = bad ? '"From" is later than "To": nothing can match. Change one of them.' : '';
    from.setAttribute('aria-invalid', bad ? 'true' : 'false');
    to.setAttribute('aria-invalid', bad ? 'true' : 'false');
    return !bad;
  };

  type Page = { events: EventSummary[]; total: number; nextBefore: string | null; liveCursor: string };
  /** The first page; `replace` (new filters) starts over, otherwise it is merged (polling). */
  async function loadFirst(replace: boolean): Promise<boolean> {
    const gen = generation;
    const q = filterQuery();
    q.set('limit', String(PAGE));
    let r: Page;
    try {
      r = await get<Page>(`/api/events?${q}`);
    } catch (err) {
      if (err instanceof ApiError && err.status < 500 && err.status !== 0) {
        toast(err.message, 'error');
        return true;
      }
      return false;
    }
    if (gen !== generation) return true;
    if (replace) {
      events.clear();
      olderCursor = r.nextBefore;
    } else if (!loaded) olderCursor = r.nextBefore;
    for (const e of r.events) events.set(e.eventId, e);
    total = r.total;
    if (!loaded) {
      loaded = true;
      startStream(r.liveCursor);
    }
    schedule();
    return true;
  }

  function startStream(cursor: string): void {
    const stream = liveStream(cursor);
    stream.on({
      event(e, created) {
        const had = events.has(e.eventId);
        if (created && !had) total += 1;
        if (matches(e, filters())) {
          // an event older than the oldest page loaded comes with "Show older", in order
          const oldest = [...events.values()].sort(newestFirst).at(-1);
          if (had || !olderCursor || !oldest || newestFirst(e, oldest) <= 0) events.set(e.eventId, e);
        } else events.delete(e.eventId);
        schedule();
      },
      sensor(s) {
        sensors.set(s.id, s);
      },
      reset() {
        void loadFirst(false);
      },
      poll: () => loadFirst(false),
      state(s, since) {
        outage(s === 'offline' ? since : null);
      },
    });
  }

  moreBtn.addEventListener('click', async () => {
    const before = olderCursor;
    if (!before) return;
    moreBtn.disabled = true;
    const gen = generation;
    try {
      const q = filterQuery();
      q.set('limit', String(PAGE));
      q.set('before', before);
      const r = await get<Page>(`/api/events?${q}`);
      if (gen !== generation) return;
      for (const e of r.events) events.set(e.eventId, e);
      olderCursor = r.nextBefore;
      render();
    } catch (err) {
      toast(err instanceof ApiError ? err.message : 'Cannot load older events', 'error');
    } finally {
      moreBtn.disabled = false;
    }
  });

  bulkBar.querySelector('#bulk-clear')!.addEventListener('click', () => {
    selected.clear();
    render();
  });
  bulkBar.querySelector('#bulk-false-alarm')!.addEventListener('click', async () => {
    const ids = [...selected];
    if (
      !ids.length ||
      !confirm(`Mark ${ids.length} ${ids.length === 1 ? 'event' : 'events'} as false alarm?`)
    )
      return;
    try {
      const r = await post<{ resolved: string[]; missing: string[] }>('/api/events/review-bulk', {
        eventIds: ids,
        verdict: 'false-alarm',
      });
      selected.clear();
      toast(
        `${r.resolved.length} marked as false alarm${r.missing.length ? `; ${r.missing.length} no longer exist` : ''}`,
      );
      render();
    } catch (err) {
      toast(err instanceof ApiError ? err.message : 'Could not save the review', 'error');
    }
  });

  const sync = () => {
    const q = new URLSearchParams();
    const f = filters();
    if (f.sensorId) q.set('sensorId', f.sensorId);
    if (f.from) q.set('from', f.from);
    if (f.to) q.set('to', f.to);
    if (f.isScream) q.set('isScream', 'true');
    if (f.response) q.set('response', f.response);
    if (f.verdict) q.set('verdict', f.verdict);
    history.replaceState(null, '', q.size ? `?${q}` : location.pathname);
    paintExport();
    generation += 1;
    selected.clear();
    if (!validRange()) {
      events.clear();
      olderCursor = null;
      render();
      return;
    }
    void loadFirst(true);
  };
  form.addEventListener('change', sync);
  form.addEventListener('reset', () => setTimeout(sync, 0));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sync();
  });
  paintExport();
  if (validRange()) {
    if (!(await loadFirst(true))) {
      // the server is down at first load: show that, and keep trying
      outage(new Date());
      const retry = async () => {
        if (await loadFirst(true)) outage(null);
        else setTimeout(retry, 5000);
      };
      setTimeout(retry, 5000);
    }
  } else render();
  map.invalidate();
}
