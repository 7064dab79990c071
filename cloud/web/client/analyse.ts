import type { AnalysisResult } from '../../../core/detect/analyze.ts';
import { ApiError, post } from './api.ts';
import { clear, h } from './dom.ts';
import { bytes, pct } from './format.ts';
import { mountPlot, probabilityPlot } from './plot.ts';
import { isAdmin } from './shell.ts';

interface AnalyseResponse {
  file: string;
  bytes: number;
  originalSampleRate: number;
  result: AnalysisResult;
  eventId: string | null;
}

export function initAnalyse(main: HTMLElement): void {
  const maxBytes = Number(document.body.dataset.maxUpload ?? 0);
  const input = h('input', {
    type: 'file',
    id: 'audio-file',
    name: 'file',
    accept: '.wav,.mp3,audio/wav,audio/x-wav,audio/mpeg',
  });
  const fileLabel = h('span', { class: 'drop-file' }, 'No file chosen');
  const store = h('input', { type: 'checkbox', id: 'store-event' });
  const submit = h(
    'button',
    { class: 'btn btn-primary', type: 'submit', id: 'analyse-submit', disabled: true },
    'Analyse',
  );
  const error = h('p', { class: 'form-error', role: 'alert', id: 'analyse-error', hidden: true });
  const result = h('div', { id: 'analyse-result', 'aria-live': 'polite' });
  const drop = h(
    'label',
    { class: 'dropzone', for: 'audio-file' },
    h('span', { class: 'drop-icon', 'aria-hidden': 'true' }, '♪'),
    h('strong', {}, 'Choose a WAV or MP3 file'),
    h('span', { class: 'muted small' }, `or drop it here · up to ${bytes(maxBytes)}`),
    fileLabel,
    input,
  );
  const form = h(
    'form',
    { class: 'card analyse-form', id: 'analyse-form' },
    drop,
    h(
      'div',
      { class: 'form-row' },
      isAdmin()
        ? h('label', { class: 'check' }, store, h('span', {}, 'Store the result as an event'))
        : h('span', {}),
      submit,
    ),
    error,
  );
  clear(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Analyse a file'),
      h('span', { class: 'muted' }, 'Scored with the same model and code as the sensors'),
    ),
    form,
    result,
  );

  const pick = (f: File | undefined) => {
    error.hidden = true;
    if (!f) return;
    fileLabel.textContent = `${f.name} · ${bytes(f.size)}`;
    submit.disabled = false;
    if (maxBytes && f.size > maxBytes) {
      error.textContent = `${f.name} is ${bytes(f.size)}; the limit is ${bytes(maxBytes)}.`;
      error.hidden = false;
      submit.disabled = true;
    }
  };
  input.addEventListener('change', () => pick(input.files?.[0]));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('dragging');
    const f = e.dataTransfer?.files[0];
    if (f) {
      const dt = new DataTransfer();
      dt.items.add(f);
      input.files = dt.files;
      pick(f);
    }
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = input.files?.[0];
    if (!f) return;
    submit.disabled = true;
    submit.textContent = 'Analysing…';
    error.hidden = true;
    const body = new FormData();
    body.append('file', f, f.name);
    try {
      const r = await post<AnalyseResponse>(`/api/analyze${store.checked ? '?store=true' : ''}`, body);
      showResult(result, r);
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : 'Upload failed';
      error.hidden = false;
      clear(result);
    } finally {
      submit.disabled = false;
      submit.textContent = 'Analyse';
    }
  });
}

function showResult(el: HTMLElement, r: AnalyseResponse): void {
  const res = r.result;
  const plotHost = h('div', { class: 'plot-wrap', id: 'analysis-plot' });
  const first = res.events[0];
  const verdict = res.isScream
    ? h(
        'div',
        { class: 'verdict verdict-scream' },
        h('strong', {}, `Scream detected`),
        h('span', {}, first ? ` at ${first.startS.toFixed(2)} s` : ''),
      )
    : h('div', { class: 'verdict verdict-clear' }, h('strong', {}, 'No scream detected'));
  el.replaceChildren(
    h(
      'section',
      { class: 'card result-card' },
      h('div', { class: 'card-head' }, h('h2', {}, r.file), verdict),
      h(
        'div',
        { class: 'stats' },
        h(
          'div',
          { class: 'stat' },
          h('span', { class: 'stat-label' }, 'Peak probability'),
          h('span', { class: 'stat-value' }, pct(res.maxProbability)),
        ),
        h(
          'div',
          { class: 'stat' },
          h('span', { class: 'stat-label' }, 'Threshold'),
          h('span', { class: 'stat-value' }, pct(res.thresholdValue)),
        ),
        h(
          'div',
          { class: 'stat' },
          h('span', { class: 'stat-label' }, 'Duration'),
          h('span', { class: 'stat-value' }, `${res.durationS.toFixed(1)} s`),
        ),
        h(
          'div',
          { class: 'stat' },
          h('span', { class: 'stat-label' }, 'Events'),
          h('span', { class: 'stat-value' }, String(res.events.length)),
        ),
      ),
      plotHost,
      h(
        'p',
        { class: 'legend muted small' },
        h('span', { class: 'legend-item' }, h('span', { class: 'key key-line' }), 'probability per window'),
        h('span', { class: 'legend-item' }, h('span', { class: 'key key-threshold' }), 'threshold'),
        h('span', { class: 'legend-item' }, h('span', { class: 'key key-event' }), 'detected event'),
      ),
      res.events.length > 0
        ? h(
            'table',
            { class: 'table' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, '#'),
                h('th', {}, 'From'),
                h('th', {}, 'To'),
                h('th', {}, 'Confirmed at'),
                h('th', {}, 'Peak'),
              ),
            ),
            h(
              'tbody',
              {},
              ...res.events.map((ev, i) =>
                h(
                  'tr',
                  {},
                  h('td', {}, String(i + 1)),
                  h('td', {}, `${ev.startS.toFixed(2)} s`),
                  h('td', {}, `${ev.endS.toFixed(2)} s`),
                  h('td', {}, `${ev.detectedAtS.toFixed(2)} s`),
                  h('td', {}, pct(ev.peakProbability)),
                ),
              ),
            ),
          )
        : null,
      h(
        'p',
        { class: 'muted small' },
        `Model ${res.modelVersion} · original ${r.originalSampleRate} Hz, analysed at 16 kHz`,
      ),
      r.eventId
        ? h(
            'p',
            {},
            'Stored as ',
            h('a', { href: `/events/${encodeURIComponent(r.eventId)}`, id: 'stored-event' }, 'an event'),
            '.',
          )
        : null,
    ),
  );
  mountPlot(plotHost, (width) =>
    probabilityPlot({
      windows: res.windows,
      threshold: res.thresholdValue,
      events: res.events,
      durationS: res.durationS,
      width,
    }),
  );
}
