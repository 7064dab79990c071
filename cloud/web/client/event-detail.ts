import { WINDOW_S } from '../../../core/features/window-features.ts';
import type { StoredEvent } from '../../store/types.ts';
import type { SensorView } from '../types.ts';
import { alertToast, channelName, describeAlert, describeDelivery, type Outcome } from './alert-outcome.ts';
import { ApiError, get, post } from './api.ts';
import { append, clear, h, toast } from './dom.ts';
import {
  clockSkew,
  dateTime,
  db,
  kind,
  locationSource,
  metres,
  pct,
  receivedLag,
  relative,
  responseState,
  sourceTitle,
} from './format.ts';
import { liveStream } from './live-stream.ts';
import { EventMap } from './map.ts';
import { mountPlot, probabilityPlot } from './plot.ts';
import { isAdmin } from './shell.ts';

/**
 * A sensor's timeline as plot windows on an axis from 0 (the first window's start): the
 * confirmation at `spanS`, the evidence after it (when the sensor sent it) up to `durationS`.
 */
export function sensorEvidence(e: Pick<StoredEvent, 'timeline'>): {
  windows: { startS: number; endS: number; probability: number }[];
  spanS: number;
  durationS: number;
  afterS: number;
} | null {
  const t = e.timeline ?? [];
  if (t.length === 0) return null;
  const origin = Math.min(...t.map((w) => w.t)) - WINDOW_S;
  const afterS = Math.max(0, ...t.map((w) => w.t));
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    windows: t.map((w) => ({ startS: r(w.t - WINDOW_S - origin), endS: r(w.t - origin), probability: w.p })),
    spanS: r(-origin),
    durationS: r(afterS - origin),
    afterS: r(afterS),
  };
}

function row(label: string, value: Node | string): HTMLElement {
  return h('div', { class: 'kv' }, h('dt', {}, label), h('dd', {}, value));
}

function badge(b: { label: string; tone: string }): HTMLElement {
  return h('span', { class: `badge badge-${b.tone}` }, b.label);
}

function outcomeBadge(o: Outcome, id?: string): HTMLElement {
  return h('span', { class: `badge badge-${o.tone}`, ...(id ? { id } : {}) }, o.label);
}

function deliveries(e: StoredEvent): HTMLElement {
  if (e.deliveries.length === 0) return h('p', { class: 'muted' }, 'No message was sent for this event.');
  return h(
    'table',
    { class: 'table deliveries' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'Channel'),
        h('th', {}, 'To'),
        h('th', {}, 'Outcome'),
        h('th', {}, 'Tries'),
        h('th', {}, 'Updated'),
      ),
    ),
    h(
      'tbody',
      {},
      ...e.deliveries.map((d) => {
        const o = describeDelivery(d);
        return h(
          'tr',
          { 'data-channel': d.channel, 'data-status': d.status },
          h('td', {}, channelName(d.channel)),
          h('td', { class: 'mono' }, d.to),
          h(
            'td',
            {},
            outcomeBadge(o),
            o.detail ? h('div', { class: `small outcome-detail tone-text-${o.tone}` }, o.detail) : null,
          ),
          h('td', {}, String(d.attempts)),
          h('td', { title: dateTime(d.updatedAt) }, relative(d.updatedAt)),
        );
      }),
    ),
  );
}

/** The alert as a whole: what was decided and why, with the event that did alert on a cooldown. */
function alertSummary(e: StoredEvent): HTMLElement {
  const o = describeAlert(e);
  return h(
    'p',
    { class: 'alert-summary', id: 'alert-summary' },
    o.detail,
    o.eventId
      ? h(
          'span',
          {},
          ' ',
          h(
            'a',
            { href: `/events/${encodeURIComponent(o.eventId)}`, id: 'alerted-event' },
            'Open the event that alerted',
          ),
          '.',
        )
      : null,
  );
}

/**
 * After a manual alert the messages are queued: follow the event until none is pending (bounded),
 * so the toast ends with what happened rather than what was asked for.
 */
async function followManualAlert(main: HTMLElement, first: StoredEvent, sensorName: string | null) {
  let e = first;
  for (let i = 0; i < 30 && e.deliveries.some((d) => d.status === 'pending' && d.attempts === 0); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      e = (await get<{ event: StoredEvent }>(`/api/events/${encodeURIComponent(e.eventId)}`)).event;
    } catch {
      continue;
    }
    if (document.body.dataset.eventId !== e.eventId) return;
    render(main, e, sensorName);
  }
  if (e !== first) {
    const t = alertToast(e);
    toast(t.message, t.kind);
  }
}

export async function initEventDetail(main: HTMLElement): Promise<void> {
  const id = document.body.dataset.eventId ?? '';
  let event: StoredEvent;
  let cursor: string | null = null;
  try {
    const r = await get<{ event: StoredEvent; liveCursor: string }>(`/api/events/${encodeURIComponent(id)}`);
    event = r.event;
    cursor = r.liveCursor;
  } catch (err) {
    clear(
      main,
      h('div', { class: 'page-head' }, h('a', { href: '/events', class: 'back' }, '← Events')),
      h(
        'div',
        { class: 'card empty error' },
        err instanceof ApiError ? err.message : 'Cannot load the event',
      ),
    );
    return;
  }
  let sensorName: string | null = null;
  try {
    sensorName = (await get<{ sensor: SensorView }>(`/api/sensors/${encodeURIComponent(event.sensorId)}`))
      .sensor.name;
  } catch {
    // uploads and browser detections have no sensor; the id or file name is the title then
  }
  render(main, event, sensorName);
  // someone else acknowledging, resolving or an alert outcome shows up here at once
  const refresh = async (): Promise<boolean> => {
    try {
      const r = await get<{ event: StoredEvent }>(`/api/events/${encodeURIComponent(id)}`);
      render(main, r.event, sensorName);
      return true;
    } catch (err) {
      return err instanceof ApiError && err.status < 500;
    }
  };
  const banner = () => document.getElementById('outage-banner');
  liveStream(cursor).on({
    event(e) {
      if (e.eventId === id) void refresh();
    },
    reset: () => void refresh(),
    poll: refresh,
    state(s, since) {
      const b = banner();
      if (!b) return;
      b.hidden = s !== 'offline';
      b.textContent = since
        ? `Cannot reach the server since ${since.toLocaleTimeString()}; this page may be out of date. Retrying…`
        : '';
    },
  });
}

/** Keeps what someone is typing in the note when the page is redrawn by a live update. */
let draftNote = '';

function historyList(e: StoredEvent): HTMLElement | null {
  const items = e.history ?? [];
  if (items.length === 0) return null;
  const words = (x: NonNullable<StoredEvent['history']>[number]) =>
    x.action === 'acknowledged'
      ? 'acknowledged (responding)'
      : x.action === 'resolved'
        ? `resolved: ${x.verdict === 'false-alarm' ? 'false alarm' : 'confirmed'}`
        : x.action === 'reopened'
          ? 'reopened'
          : 'sent a manual alert';
  return h(
    'ol',
    { class: 'history', id: 'event-history' },
    ...items.map((x) =>
      h(
        'li',
        {},
        h('time', { datetime: x.at }, dateTime(x.at)),
        ' ',
        h('strong', {}, x.userId),
        ` ${words(x)}`,
        x.note ? h('blockquote', {}, x.note) : null,
      ),
    ),
  );
}

function responseCard(main: HTMLElement, e: StoredEvent, sensorName: string | null): HTMLElement {
  const card = h('section', { class: 'card response-card', id: 'review' }, h('h2', {}, 'Response'));
  const r = e.response;
  const state = responseState(e);
  if (state) {
    card.append(
      h(
        'p',
        { class: 'review-state', id: 'response-state', 'data-state': r?.state ?? 'resolved' },
        badge(state),
        ` ${state.detail}`,
      ),
    );
    if (r?.state === 'resolved' && r.note) card.append(h('blockquote', {}, r.note));
    else if (!r && e.review?.note) card.append(h('blockquote', {}, e.review.note));
  } else {
    card.append(
      h(
        'p',
        { class: 'muted', id: 'response-state', 'data-state': 'new' },
        'New: nobody has acknowledged it yet.',
      ),
    );
  }
  if (isAdmin()) {
    const note = h('textarea', {
      id: 'review-note',
      rows: 2,
      maxlength: 2000,
      placeholder: 'Note (optional): what happened?',
    });
    note.value = draftNote;
    note.addEventListener('input', () => {
      draftNote = note.value;
    });
    const act = (path: string, body: unknown, done: string) => async () => {
      try {
        const res = await post<{ event: StoredEvent }>(
          `/api/events/${encodeURIComponent(e.eventId)}/${path}`,
          body,
        );
        draftNote = '';
        toast(done);
        render(main, res.event, sensorName);
      } catch (err) {
        toast(err instanceof ApiError ? err.message : 'Could not save; nothing changed', 'error');
      }
    };
    const ackBtn =
      r?.state === 'acknowledged' || r?.state === 'resolved'
        ? null
        : h(
            'button',
            {
              class: 'btn btn-primary',
              type: 'button',
              id: 'acknowledge',
              onclick: act('acknowledge', {}, 'Acknowledged: everyone sees that you are responding'),
            },
            "I'm responding",
          );
    const resolve = (v: 'false-alarm' | 'confirmed') => () =>
      act(
        'resolve',
        { verdict: v, note: note.value || null },
        v === 'confirmed' ? 'Resolved as confirmed' : 'Resolved as false alarm',
      )();
    append(card, [
      ackBtn ? h('div', { class: 'actions actions-top' }, ackBtn) : null,

      note,
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          { class: 'btn', type: 'button', id: 'mark-false-alarm', onclick: resolve('false-alarm') },
          'False alarm',
        ),
        h(
          'button',
          { class: 'btn btn-danger', type: 'button', id: 'mark-confirmed', onclick: resolve('confirmed') },
          'Confirmed',
        ),
      ),
      h(
        'p',
        { class: 'small muted' },
        'Verdicts are kept for retraining; every change stays in the history below.',
      ),
    ]);
  }
  const hist = historyList(e);
  if (hist) card.append(h('h3', {}, 'History'), hist);
  return card;
}

function render(main: HTMLElement, e: StoredEvent, sensorName: string | null): void {
  const k = kind(e);
  const loc = e.location;
  const hasPoint = typeof loc.latitude === 'number' && typeof loc.longitude === 'number';
  const mapEl = h('div', { class: 'map map-small', id: 'event-map' });

  const where = h(
    'section',
    { class: 'card' },
    h('h2', {}, 'Where'),
    h(
      'dl',
      { class: 'kvs' },
      row('Address', loc.address ?? '–'),
      row('Room', loc.room ?? '–'),
      row('Sensor', e.sensorId),
      row('Location from', `${locationSource(loc.source)}${hasPoint ? ` · ${metres(loc.accuracy)}` : ''}`),
      hasPoint ? row('Coordinates', `${loc.latitude!.toFixed(5)}, ${loc.longitude!.toFixed(5)}`) : null,
    ),
    hasPoint ? mapEl : h('p', { class: 'muted' }, 'No coordinates for this event.'),
  );

  const when = h(
    'section',
    { class: 'card' },
    h('h2', {}, 'When'),
    h(
      'dl',
      { class: 'kvs' },
      row('Detected', dateTime(e.timestamp)),
      e.startedAt ? row('Began', dateTime(e.startedAt)) : null,
      row('Received', `${dateTime(e.receivedAt)}${receivedLag(e.timestamp, e.receivedAt)}`),
      e.sensorTimestamp && e.clockSkewS != null
        ? row(
            'Sensor clock',
            h(
              'span',
              { class: 'clock-skew' },
              `${clockSkew(e.clockSkewS)}: stamped ${dateTime(e.sensorTimestamp)}; listed by its received time`,
            ),
          )
        : null,
    ),
    h('h2', {}, 'Detection'),
    h(
      'dl',
      { class: 'kvs' },
      row('Probability', h('span', { class: 'big-number' }, pct(e.screamProbability))),
      row('Threshold', pct(e.thresholdValue)),
      row('Level', db(e.levelDbfs)),
      row('Audio', e.audioSource),
      row('Model', e.modelVersion ?? '–'),
      e.userId ? row('By', e.userId) : null,
    ),
  );

  const timeline = h('section', { class: 'card span-2' }, h('h2', {}, 'Window timeline'));
  const plotHost = h('div', { class: 'plot-wrap' });
  const evidence = sensorEvidence(e);
  const windows = e.windows?.length ? e.windows : (evidence?.windows ?? []);
  if (windows.length > 0) {
    if (evidence && !e.windows?.length)
      timeline.append(
        h(
          'p',
          { class: 'muted small', id: 'timeline-caption' },
          evidence.afterS > 0
            ? `The sensor's window scores from ${Math.round(evidence.spanS)} s before to ${Math.round(evidence.afterS)} s after the detection (marked); numbers only, no audio left the sensor.`
            : `The sensor's window scores for the ${Math.round(evidence.spanS)} s up to the detection (the right edge); the 10 s after follow from the sensor. Numbers only, no audio left the sensor.`,
        ),
      );
    timeline.append(plotHost);
  } else {
    timeline.append(
      h(
        'p',
        { class: 'muted' },
        'This event came without a window timeline (an older sensor daemon, or not a detection).',
      ),
    );
  }

  const alertBtn = h(
    'button',
    { class: 'btn btn-danger', type: 'button', id: 'manual-alert' },
    'Send alert to contacts',
  );
  const alerts = h(
    'section',
    { class: 'card' },
    h(
      'div',
      { class: 'card-head' },
      h('h2', {}, 'Alert delivery'),
      outcomeBadge(describeAlert(e), 'alert-badge'),
    ),
    alertSummary(e),
    deliveries(e),
    isAdmin() ? h('div', { class: 'actions' }, alertBtn) : null,
  );
  alertBtn.addEventListener('click', async () => {
    if (!confirm(`Send an SMS/email alert for this event (${e.sensorId}) to its contacts now?`)) return;
    alertBtn.disabled = true;
    try {
      const r = await post<{ event: StoredEvent }>(`/api/events/${encodeURIComponent(e.eventId)}/alert`);
      const t = alertToast(r.event);
      toast(t.message, t.kind);
      render(main, r.event, sensorName);
      void followManualAlert(main, r.event, sensorName);
    } catch (err) {
      toast(err instanceof ApiError ? err.message : 'The alert request failed; nothing was sent', 'error');
      alertBtn.disabled = false;
    }
  });

  const review = responseCard(main, e, sensorName);

  const notes =
    e.notes || e.error
      ? h(
          'section',
          { class: 'card span-2' },
          h('h2', {}, 'Notes'),
          e.notes ? h('p', { class: 'prewrap' }, e.notes) : null,
          e.error ? h('p', { class: 'error-text' }, e.error) : null,
        )
      : null;

  clear(
    main,
    h('a', { href: '/events', class: 'back' }, '← Events'),
    h(
      'div',
      { class: `page-head detail-head tone-${k.tone}` },
      h(
        'div',
        {},
        h('h1', {}, badge(k), ` ${sourceTitle(e, sensorName)}`),
        h(
          'p',
          { class: 'muted' },
          `${dateTime(e.timestamp)} · ${relative(e.timestamp)} · `,
          h('span', { class: 'mono small' }, e.eventId),
        ),
      ),
    ),
    h('div', { class: 'detail-grid' }, review, alerts, where, when, timeline, notes),
  );
  if (windows.length > 0) {
    mountPlot(plotHost, (width) =>
      probabilityPlot({
        windows,
        threshold: e.thresholdValue,
        width,
        ...(evidence && !e.windows?.length
          ? {
              events: [{ startS: evidence.spanS - 0.05, endS: evidence.spanS }],
              durationS: evidence.durationS,
            }
          : {}),
      }),
    );
  }
  if (hasPoint) {
    const map = new EventMap(mapEl, document.body.dataset.tileUrl ?? '');
    map.show([e]);
    map.invalidate();
  }
}
