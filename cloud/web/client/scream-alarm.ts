// What a person on call notices without watching the page: a sound (can be muted), the tab
// title counting screams not yet seen, and, when they opted in, a browser notification.

import type { EventSummary } from './live-stream.ts';
import { onStream } from './live-stream.ts';

const SOUND_KEY = 'screamwatch.sound';
let unseen = 0;
const baseTitle = document.title;
let audio: AudioContext | null = null;

export function soundOn(): boolean {
  return localStorage.getItem(SOUND_KEY) !== 'off';
}

function renderTitle(): void {
  document.title =
    unseen > 0 ? `(${unseen}) ${unseen === 1 ? 'Scream' : 'Screams'} · ${baseTitle}` : baseTitle;
  document.body.dataset.unseen = String(unseen);
}

/** Two short alternating tones; Web Audio, so no sound file is served. */
function chime(): void {
  if (!soundOn()) return;
  try {
    audio ??= new AudioContext();
    if (audio.state === 'suspended') void audio.resume();
    const t0 = audio.currentTime;
    for (let i = 0; i < 4; i++) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = i % 2 ? 660 : 880;
      gain.gain.setValueAtTime(0.0001, t0 + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.25, t0 + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.18 + 0.16);
      osc.connect(gain).connect(audio.destination);
      osc.start(t0 + i * 0.18);
      osc.stop(t0 + i * 0.18 + 0.17);
    }
    document.body.dataset.chimes = String(Number(document.body.dataset.chimes ?? 0) + 1);
  } catch {
    // no audio device or blocked before any user gesture: the title and notification still tell
  }
}

function notify(e: EventSummary): void {
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  const where = e.location.room ?? e.location.address ?? e.sensorId;
  const n = new Notification(`Scream at ${where}`, {
    body: `${Math.round(e.screamProbability * 100)}% · ${new Date(e.timestamp).toLocaleTimeString()} · ${e.sensorId}`,
    tag: e.eventId,
    requireInteraction: true,
  });
  n.onclick = () => {
    window.focus();
    location.assign(`/events/${encodeURIComponent(e.eventId)}`);
  };
}

/** A confirmed scream from a sensor or a live browser detection, not a near miss or an upload. */
export function isNewScream(e: EventSummary): boolean {
  return e.isScream && (e.alertType === 'scream' || e.alertType === 'manual');
}

export function initScreamAlarm(): void {
  const seen = new Set<string>();
  onStream({
    event(e, created) {
      if (!created || seen.has(e.eventId) || !isNewScream(e)) return;
      seen.add(e.eventId);
      unseen += 1;
      renderTitle();
      chime();
      notify(e);
    },
  });
  const looked = () => {
    if (unseen === 0 || document.hidden) return;
    unseen = 0;
    renderTitle();
  };
  // a key press or tap on the page, or coming back to the tab, counts as having seen them
  document.addEventListener('pointerdown', looked);
  document.addEventListener('keydown', looked);
  document.addEventListener('visibilitychange', looked);

  const soundBtn = document.getElementById('sound-toggle');
  const paintSound = () => {
    if (!soundBtn) return;
    soundBtn.textContent = soundOn() ? 'Sound on' : 'Sound off';
    soundBtn.setAttribute('aria-pressed', String(soundOn()));
  };
  paintSound();
  soundBtn?.addEventListener('click', () => {
    localStorage.setItem(SOUND_KEY, soundOn() ? 'off' : 'on');
    paintSound();
    // the click is the user gesture browsers require before any sound
    if (soundOn()) audio ??= new AudioContext();
  });
  // unlock audio on the first gesture so a later scream can be heard
  document.addEventListener(
    'pointerdown',
    () => {
      if (soundOn()) {
        try {
          audio ??= new AudioContext();
        } catch {
          // no audio
        }
      }
    },
    { once: true },
  );

  const notifyBtn = document.getElementById('notify-toggle') as HTMLButtonElement | null;
  const paintNotify = () => {
    if (!notifyBtn) return;
    if (typeof Notification === 'undefined') {
      notifyBtn.hidden = true;
      return;
    }
    notifyBtn.hidden = Notification.permission === 'granted';
    notifyBtn.disabled = Notification.permission === 'denied';
    notifyBtn.textContent = Notification.permission === 'denied' ? 'Notifications blocked' : 'Notify me';
  };
  paintNotify();
  notifyBtn?.addEventListener('click', async () => {
    await Notification.requestPermission();
    paintNotify();
  });
}
