// The Live page: the browser's microphone scored in the browser with the shared core.
// No audio leaves the page; only a confirmed detection the user chooses to alert on is sent.
import type { ConfirmedEvent } from '../../../core/detect/confirmer.ts';
import { StreamDetector } from '../../../core/detect/detector.ts';
import { ScreamModel } from '../../../core/model/scream-model.ts';
import type { StoredEvent } from '../../store/types.ts';
import { alertToast } from './alert-outcome.ts';
import { ApiError, get, post } from './api.ts';
import { clear, h, toast } from './dom.ts';
import { locationSource, metres, pct } from './format.ts';
import { ChunkResampler, rmsDbfs } from './live-audio.ts';
import { initShell, isAdmin } from './shell.ts';

const HISTORY_S = 30;
const METER_FLOOR_DB = -80;

interface Point {
  t: number;
  p: number;
}

function drawPlot(
  canvas: HTMLCanvasElement,
  points: Point[],
  threshold: number,
  nowS: number,
  hot: boolean,
): void {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const ht = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(ht * dpr);
  }
  const g = canvas.getContext('2d');
  if (!g) return;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, ht);
  const padL = 40;
  const padB = 20;
  const x = (t: number) => padL + ((t - (nowS - HISTORY_S)) / HISTORY_S) * (w - padL - 8);
  const y = (p: number) => 8 + (1 - p) * (ht - 8 - padB);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#6b7280';
  g.strokeStyle = '#e5e7eb';
  g.lineWidth = 1;
  for (const p of [0, 0.5, 1]) {
    g.beginPath();
    g.moveTo(padL, y(p));
    g.lineTo(w - 8, y(p));
    g.stroke();
    g.fillText(`${p * 100}%`, 4, y(p) + 4);
  }
  for (let s = 0; s <= HISTORY_S; s += 10) {
    // the newest label hugs the right edge, the rest are centred on their tick
    g.textAlign = s === 0 ? 'right' : 'center';
    g.fillText(s === 0 ? 'now' : `-${s} s`, s === 0 ? w - 8 : x(nowS - s), ht - 5);
  }
  g.textAlign = 'left';
  g.setLineDash([6, 4]);
  g.strokeStyle = '#d43a2f';
  g.beginPath();
  g.moveTo(padL, y(threshold));
  g.lineTo(w - 8, y(threshold));
  g.stroke();
  g.setLineDash([]);
  const visible = points.filter((q) => q.t >= nowS - HISTORY_S);
  if (visible.length > 1) {
    g.beginPath();
    g.moveTo(x(visible[0]!.t), y(0));
    for (const q of visible) g.lineTo(x(q.t), y(q.p));
    g.lineTo(x(visible.at(-1)!.t), y(0));
    g.closePath();
    g.fillStyle = hot ? 'rgba(212,58,47,0.18)' : 'rgba(42,111,219,0.15)';
    g.fill();
    g.beginPath();
    g.moveTo(x(visible[0]!.t), y(visible[0]!.p));
    for (const q of visible.slice(1)) g.lineTo(x(q.t), y(q.p));
    g.strokeStyle = hot ? '#d43a2f' : '#2a6fdb';
    g.lineWidth = 2;
    g.stroke();
  }
}

async function init(main: HTMLElement): Promise<void> {
  const startBtn = h(
    'button',
    { class: 'btn btn-primary btn-lg', type: 'button', id: 'live-toggle', disabled: true },
    'Start listening',
  );
  const status = h('p', { class: 'live-status muted', id: 'live-status' }, 'Loading the model…');
  const meterBar = h('div', { class: 'meter-bar' });
  const meterValue = h('span', { class: 'meter-value', id: 'level-value' }, '–');
  const meter = h(
    'div',
    {
      class: 'meter',
      id: 'level-meter',
      'data-level': '',
      role: 'meter',
      'aria-label': 'Input level',
      'aria-valuemin': METER_FLOOR_DB,
      'aria-valuemax': 0,
    },
    meterBar,
  );
  const probValue = h('span', { class: 'big-number', id: 'prob-value' }, '–');
  const canvas = h('canvas', {
    class: 'live-plot',
    id: 'live-plot',
    'aria-label': 'Scream probability, last 30 seconds',
  });
  const alertPanel = h('section', { class: 'card alert-panel', id: 'alert-panel', hidden: true });
  clear(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Live detection'),
      h('span', { class: 'muted' }, 'Runs in this browser · no audio is uploaded'),
    ),
    alertPanel,
    h(
      'section',
      { class: 'card live-card' },
      h('div', { class: 'live-controls' }, startBtn, status),
      h(
        'div',
        { class: 'live-readouts' },
        h('div', { class: 'readout' }, h('span', { class: 'stat-label' }, 'Input level'), meter, meterValue),
        h(
          'div',
          { class: 'readout readout-prob' },
          h('span', { class: 'stat-label' }, 'Scream probability'),
          probValue,
        ),
      ),
      canvas,
    ),
  );

  let model: ScreamModel;
  try {
    model = ScreamModel.fromJSON(await get<unknown>('/api/model'), 'server model');
  } catch (err) {
    status.textContent = `Cannot load the model: ${err instanceof ApiError ? err.message : (err as Error).message}`;
    status.className = 'live-status error-text';
    return;
  }
  status.textContent = `Model ${model.version} ready. Your browser will ask for the microphone.`;
  startBtn.disabled = false;

  let ctx: AudioContext | null = null;
  let stream: MediaStream | null = null;
  let node: ScriptProcessorNode | null = null;
  let points: Point[] = [];
  let raf = 0;
  let hot = false;
  const windows: { startS: number; endS: number; probability: number }[] = [];
  const startedAtMs = { v: 0 };
  let lastLevel = METER_FLOOR_DB;

  const frame = () => {
    const nowS = ctx ? ctx.currentTime : 0;
    drawPlot(canvas, points, model.threshold, Math.max(nowS, HISTORY_S * 0.1), hot);
    raf = requestAnimationFrame(frame);
  };

  async function start(): Promise<void> {
    startBtn.disabled = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (err) {
      status.textContent = `No microphone: ${(err as Error).message}`;
      status.className = 'live-status error-text';
      startBtn.disabled = false;
      return;
    }
    ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(stream);
    // ScriptProcessor rather than an AudioWorklet: the detector is main-thread code anyway,
    // and it needs no separately served worklet module.
    node = ctx.createScriptProcessor(4096, 1, 1);
    const mute = ctx.createGain();
    mute.gain.value = 0;
    source.connect(node);
    node.connect(mute);
    mute.connect(ctx.destination);
    const resampler = new ChunkResampler(ctx.sampleRate);
    const detector = new StreamDetector(model);
    points = [];
    windows.length = 0;
    startedAtMs.v = Date.now();
    const t0 = ctx.currentTime;
    node.onaudioprocess = (ev) => {
      const input = ev.inputBuffer.getChannelData(0);
      const level = rmsDbfs(input);
      lastLevel = lastLevel * 0.5 + level * 0.5;
      const shown = Math.max(METER_FLOOR_DB, Math.min(0, lastLevel));
      meterBar.style.width = `${((shown - METER_FLOOR_DB) / -METER_FLOOR_DB) * 100}%`;
      meterBar.classList.toggle('meter-hot', shown > -12);
      meter.dataset.level = shown.toFixed(1);
      meter.setAttribute('aria-valuenow', shown.toFixed(0));
      meterValue.textContent = `${shown.toFixed(0)} dBFS`;
      for (const chunk of resampler.push(new Float32Array(input))) {
        const out = detector.push(chunk);
        for (const w of out.windows) {
          points.push({ t: t0 + w.endS, p: w.probability });
          windows.push({ startS: w.startS, endS: w.endS, probability: w.probability });
          probValue.textContent = pct(w.probability);
          probValue.dataset.probability = String(w.probability);
        }
        if (points.length > 400) points = points.slice(-300);
        if (windows.length > 240) windows.splice(0, windows.length - 240);
        for (const u of out.updates) {
          if (u.type === 'confirmed') {
            hot = true;
            offerAlert(u.event);
          } else hot = false;
        }
      }
    };
    status.textContent = `Listening at ${ctx.sampleRate} Hz, scored at 16 kHz.`;
    status.className = 'live-status live-on';
    startBtn.textContent = 'Stop';
    startBtn.classList.replace('btn-primary', 'btn-ghost-danger');
    startBtn.disabled = false;
    raf = requestAnimationFrame(frame);
  }

  async function stop(): Promise<void> {
    cancelAnimationFrame(raf);
    if (node) node.onaudioprocess = null;
    for (const t of stream?.getTracks() ?? []) t.stop();
    await ctx?.close();
    ctx = null;
    stream = null;
    node = null;
    hot = false;
    status.textContent = 'Stopped. Nothing was recorded or uploaded.';
    status.className = 'live-status muted';
    startBtn.textContent = 'Start listening';
    startBtn.classList.replace('btn-ghost-danger', 'btn-primary');
  }

  startBtn.addEventListener('click', () => void (ctx ? stop() : start()));

  function offerAlert(e: ConfirmedEvent): void {
    const at = new Date(startedAtMs.v + e.startS * 1000);
    const send = h(
      'button',
      { class: 'btn btn-danger btn-lg', type: 'button', id: 'send-live-alert' },
      'Send alert',
    );
    const result = h('p', { class: 'small', id: 'live-alert-result' });
    clear(
      alertPanel,
      h(
        'div',
        { class: 'alert-head' },
        h('span', { class: 'pulse', 'aria-hidden': 'true' }),
        h(
          'div',
          {},
          h('h2', {}, 'Scream detected'),
          h('p', { class: 'muted' }, `${at.toLocaleTimeString()} · peak ${pct(e.peakProbability)}`),
        ),
      ),
      isAdmin()
        ? h(
            'div',
            { class: 'actions' },
            send,
            h(
              'button',
              { class: 'btn', type: 'button', onclick: () => (alertPanel.hidden = true) },
              'Dismiss',
            ),
          )
        : h('p', { class: 'muted' }, 'Ask an admin to send alerts.'),
      h(
        'p',
        { class: 'muted small' },
        'Sending asks for this device’s location; if you decline, the server’s approximate IP location is used.',
      ),
      result,
    );
    alertPanel.hidden = false;
    send.addEventListener('click', async () => {
      send.disabled = true;
      send.textContent = 'Locating…';
      const position = await locate();
      send.textContent = 'Sending…';
      try {
        const r = await post<{ event: StoredEvent }>('/api/live/alert', {
          screamProbability: e.peakProbability,
          thresholdValue: model.threshold,
          startedAt: at.toISOString(),
          levelDbfs: Math.max(-200, Math.min(10, lastLevel)),
          modelVersion: model.version,
          position,
          windows: windows.slice(-120),
        });
        const loc = r.event.location;
        const t = alertToast(r.event);
        clear(
          result,
          t.message,
          ' · location from ',
          locationSource(loc.source),
          loc.latitude !== null ? ` (${metres(loc.accuracy)})` : '',
          ' · ',
          h('a', { href: `/events/${encodeURIComponent(r.event.eventId)}` }, 'open the event'),
        );
        send.textContent = t.kind === 'ok' ? 'Alert requested' : 'Not sent';
        toast(t.message, t.kind);
      } catch (err) {
        result.textContent = err instanceof ApiError ? err.message : 'Sending failed';
        result.className = 'small error-text';
        send.disabled = false;
        send.textContent = 'Send alert';
      }
    });
  }
}

function locate(): Promise<{ latitude: number; longitude: number; accuracy: number } | null> {
  if (!('geolocation' in navigator)) return Promise.resolve(null);
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (p) =>
        resolve({ latitude: p.coords.latitude, longitude: p.coords.longitude, accuracy: p.coords.accuracy }),
      () => resolve(null),
      { enableHighAccuracy: true, timeout: 10_000, maximumAge: 60_000 },
    );
  });
}

const main = document.getElementById('main');
if (main) {
  initShell();
  void init(main);
}
