import type { ChannelDelivery, StoredEvent } from '../../store/types.ts';
import type { SensorView } from '../types.ts';
import { ApiError, get, post } from './api.ts';
import { clear, h, toast } from './dom.ts';
import {
  dateTime,
  db,
  kind,
  locationSource,
  metres,
  pct,
  receivedLag,
  relative,
  response,
  sourceTitle,
  verdict,
} from './format.ts';
import { EventMap } from './map.ts';
import { mountPlot, probabilityPlot } from './plot.ts';
import { isAdmin } from './shell.ts';

function row(label: string, value: Node | string): HTMLElement {
  return h('div', { class: 'kv' }, h('dt', {}, label), h('dd', {}, value));
}

function badge(b: { label: string; tone: string }): HTMLElement {
  return h('span', { class: `badge badge-${b.tone}` }, b.label);
}

const DELIVERY_TONE: Record<ChannelDelivery['status'], string> = {
  pending: 'warn',
  sent: 'info',
  delivered: 'ok',
  failed: 'danger',
  'not-configured': 'muted',
  suppressed: 'muted',
};

function deliveries(e: StoredEvent): HTMLElement {
  if (e.deliveries.length === 0) return h('p', { class: 'muted' }, 'No alert was sent for this event.');
  return h(
    'table',
    { class: 'table' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'Channel'),
        h('th', {}, 'To'),
        h('th', {}, 'Status'),
        h('th', {}, 'Tries'),
        h('th', {}, 'Updated'),
      ),
    ),
    h(
      'tbody',
      {},
      ...e.deliveries.map((d) =>
        h(
          'tr',
          { 'data-channel': d.channel },
          h('td', {}, d.channel === 'sms' ? 'SMS' : 'Email'),
          h('td', { class: 'mono' }, d.to),
          h(
            'td',
            {},
            badge({ label: d.status, tone: DELIVERY_TONE[d.status] ?? 'muted' }),
            d.lastError ? h('div', { class: 'small error-text' }, d.lastError) : null,
          ),
          h('td', {}, String(d.attempts)),
          h('td', { title: dateTime(d.updatedAt) }, relative(d.updatedAt)),
        ),
      ),
    ),
  );
}

export async function initEventDetail(main: HTMLElement): Promise<void> {
  const id = document.body.dataset.eventId ?? '';
  let event: StoredEvent;
  try {
    event = (await get<{ event: StoredEvent }>(`/api/events/${encodeURIComponent(id)}`)).event;
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
  const windows = e.windows ?? [];
  if (windows.length > 0) {
    timeline.append(plotHost);
  } else {
    timeline.append(
      h(
        'p',
        { class: 'muted' },
        'Sensors send the peak window only; timelines exist for files and live detections.',
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
    h('div', { class: 'card-head' }, h('h2', {}, 'Alert delivery'), badge(response(e.responseStatus))),
    deliveries(e),
    isAdmin() ? h('div', { class: 'actions' }, alertBtn) : null,
  );
  alertBtn.addEventListener('click', async () => {
    if (!confirm(`Send an SMS/email alert for this event (${e.sensorId}) to its contacts now?`)) return;
    alertBtn.disabled = true;
    try {
      const r = await post<{ event: StoredEvent }>(`/api/events/${encodeURIComponent(e.eventId)}/alert`);
      toast('Alert sent');
      render(main, r.event, sensorName);
    } catch (err) {
      toast(err instanceof ApiError ? err.message : 'Alert failed', 'error');
      alertBtn.disabled = false;
    }
  });

  const note = h('textarea', {
    id: 'review-note',
    rows: 2,
    maxlength: 2000,
    placeholder: 'Note (optional): what happened?',
  });
  const review = h('section', { class: 'card', id: 'review' }, h('h2', {}, 'Review'));
  if (e.review) {
    review.append(
      h(
        'p',
        { class: 'review-state' },
        badge(verdict(e.review.verdict)),
        ` by ${e.review.userId}, ${dateTime(e.review.at)}`,
      ),
    );
    if (e.review.note) review.append(h('blockquote', {}, e.review.note));
  } else {
    review.append(h('p', { class: 'muted' }, 'Not reviewed yet. Reviews are kept for retraining the model.'));
  }
  if (isAdmin()) {
    const mark = (v: 'false-alarm' | 'confirmed') => async () => {
      try {
        const r = await post<{ event: StoredEvent }>(`/api/events/${encodeURIComponent(e.eventId)}/review`, {
          verdict: v,
          note: note.value || null,
        });
        toast(v === 'confirmed' ? 'Marked as confirmed' : 'Marked as false alarm');
        render(main, r.event, sensorName);
      } catch (err) {
        toast(err instanceof ApiError ? err.message : 'Could not save the review', 'error');
      }
    };
    review.append(
      note,
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          { class: 'btn', type: 'button', id: 'mark-false-alarm', onclick: mark('false-alarm') },
          'False alarm',
        ),
        h(
          'button',
          { class: 'btn btn-primary', type: 'button', id: 'mark-confirmed', onclick: mark('confirmed') },
          'Confirmed',
        ),
      ),
    );
  }

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
    h('div', { class: 'detail-grid' }, where, when, timeline, alerts, review, notes),
  );
  if (windows.length > 0) {
    mountPlot(plotHost, (width) => probabilityPlot({ windows, threshold: e.thresholdValue, width }));
  }
  if (hasPoint) {
    const map = new EventMap(mapEl, document.body.dataset.tileUrl ?? '');
    map.show([e]);
    map.invalidate();
  }
}
