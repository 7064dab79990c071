import type { StoredEvent } from '../../store/types.ts';

export function pct(p: number | null | undefined): string {
  return typeof p === 'number' ? `${Math.round(p * 100)}%` : '–';
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (s < 0) return 'just now';
  if (s < 45) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

export function db(v: number | null | undefined): string {
  return typeof v === 'number' ? `${v.toFixed(1)} dBFS` : '–';
}

export function metres(m: number | null | undefined): string {
  if (typeof m !== 'number') return 'unknown accuracy';
  return m >= 1000 ? `±${(m / 1000).toFixed(1)} km` : `±${Math.round(m)} m`;
}

const SOURCE_LABEL: Record<string, string> = {
  'sensor-config': 'sensor installation',
  device: 'device GPS',
  'ip-database': 'IP address (approximate)',
  browser: 'browser location',
  unknown: 'unknown',
};
export function locationSource(src: string): string {
  return SOURCE_LABEL[src] ?? src;
}

/** What kind of event this is, in words and a tone for the badge. */
export function kind(e: Pick<StoredEvent, 'alertType' | 'isScream'>): { label: string; tone: string } {
  if (e.alertType === 'upload') return { label: 'File analysis', tone: 'info' };
  if (e.alertType === 'manual') return { label: 'Manual alert', tone: 'warn' };
  if (e.alertType === 'sensor-offline') return { label: 'Sensor offline', tone: 'muted' };
  if (e.isScream) return { label: 'Scream', tone: 'danger' };
  return { label: 'Near miss', tone: 'warn' };
}

export function verdict(v: 'false-alarm' | 'confirmed'): { label: string; tone: string } {
  return v === 'confirmed' ? { label: 'Confirmed', tone: 'danger' } : { label: 'False alarm', tone: 'muted' };
}

export function bytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
}

/** What to call an event's source in a title: the sensor's name, the uploaded file, or the browser. */
export function sourceTitle(
  e: Pick<StoredEvent, 'sensorId' | 'alertType' | 'audioSource'>,
  sensorName?: string | null,
): string {
  if (sensorName) return sensorName;
  if (e.alertType === 'upload' && e.audioSource.startsWith('upload:'))
    return e.audioSource.slice('upload:'.length);
  if (e.sensorId === 'browser') return 'Browser microphone';
  return e.sensorId;
}

/** How much later the cloud received an event than the sensor stamped it (clock skew or backlog). */
export function receivedLag(timestamp: string, receivedAt: string): string {
  const s = Math.round((new Date(receivedAt).getTime() - new Date(timestamp).getTime()) / 1000);
  if (Math.abs(s) < 5) return '';
  return s > 0 ? ` (${s} s after detection)` : ` (sensor clock ${-s} s ahead)`;
}

/** A clock offset in words: "3 h 12 min ahead", "45 s behind". */
export function clockSkew(seconds: number): string {
  const a = Math.abs(seconds);
  const span =
    a >= 172_800
      ? `${Math.round(a / 86_400)} days`
      : a >= 7_200
        ? `${Math.round(a / 3600)} h`
        : a >= 120
          ? `${Math.round(a / 60)} min`
          : `${a} s`;
  return `${span} ${seconds >= 0 ? 'ahead' : 'behind'}`;
}

/** Where the people on call are with an event: acknowledged by whom, or resolved with a verdict. */
export function responseState(
  e: Pick<StoredEvent, 'response' | 'review'>,
): { label: string; tone: string; detail: string } | null {
  const r = e.response;
  if (r?.state === 'acknowledged')
    return {
      label: `Acknowledged · ${r.userId}`,
      tone: 'info',
      detail: `${r.userId} is responding (since ${dateTime(r.at)})`,
    };
  if (r?.state === 'resolved' || e.review) {
    const v = r?.verdict ?? e.review?.verdict ?? 'confirmed';
    const by = r?.userId ?? e.review?.userId ?? '';
    const b = verdict(v);
    return { label: b.label, tone: b.tone, detail: `Resolved by ${by}, ${dateTime(r?.at ?? e.review?.at)}` };
  }
  return null;
}
