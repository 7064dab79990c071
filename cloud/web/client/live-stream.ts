// The page's one connection to GET /api/stream (server-sent events). EventSource reconnects by
// itself and sends Last-Event-ID, so the server replays exactly what was missed. When the
// stream cannot be opened at all (a proxy that buffers, too many streams), the page polls
// instead and tries the stream again later.
import type { CommandRecord } from '../../control/command-log.ts';
import type { EventSummary, FeedMessage } from '../live-feed.ts';
import type { SensorView } from '../types.ts';

export type { EventSummary };
export type StreamState = 'connecting' | 'live' | 'polling' | 'offline';

export interface StreamHandlers {
  event?(e: EventSummary, created: boolean): void;
  sensor?(s: SensorView): void;
  /** A command to a sensor was sent, queued, or answered (the sensor page's audit list). */
  command?(c: CommandRecord): void;
  /** The server cannot say what was missed (it restarted, or the gap is too long): reload. */
  reset?(): void;
  /** Called every POLL_MS while the stream is down; resolves false when the server is unreachable too. */
  poll?(): Promise<boolean>;
  state?(s: StreamState, since: Date | null): void;
}

const POLL_MS = 5000;
const RETRY_STREAM_MS = 30_000;
/** Errors before the stream has ever opened: after these, poll. */
const OPEN_ATTEMPTS = 3;

export class LiveStream {
  private source: EventSource | null = null;
  private readonly handlers: StreamHandlers[] = [];
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  private opened = false;
  state: StreamState = 'connecting';
  private downSince: Date | null = null;

  constructor(private cursor: string | null) {}

  on(h: StreamHandlers): void {
    this.handlers.push(h);
  }

  /** A later, newer snapshot (e.g. after a reset reload) moves the starting point. */
  setCursor(cursor: string | null): void {
    if (cursor) this.cursor = cursor;
  }

  start(): void {
    if (typeof EventSource === 'undefined') {
      this.startPolling();
      return;
    }
    this.open();
  }

  private emit<K extends keyof StreamHandlers>(k: K, ...args: Parameters<NonNullable<StreamHandlers[K]>>) {
    for (const h of this.handlers) (h[k] as ((...a: unknown[]) => void) | undefined)?.(...args);
  }

  private setState(s: StreamState): void {
    if (s === 'live') this.downSince = null;
    else if (s !== 'connecting') this.downSince ??= new Date();
    if (s === this.state) return;
    this.state = s;
    document.body.dataset.stream = s;
    this.emit('state', s, this.downSince);
  }

  private open(): void {
    this.source?.close();
    const url = this.cursor ? `/api/stream?after=${encodeURIComponent(this.cursor)}` : '/api/stream';
    const src = new EventSource(url);
    this.source = src;
    this.opened = false;
    src.onopen = () => {
      this.opened = true;
      this.failures = 0;
      this.stopPolling();
      this.setState('live');
    };
    src.onerror = () => {
      // CONNECTING: the browser is retrying by itself (with Last-Event-ID); CLOSED: it gave up
      if (!this.opened) this.failures += 1;
      if (src.readyState === EventSource.CLOSED || this.failures >= OPEN_ATTEMPTS) {
        src.close();
        this.source = null;
        this.startPolling();
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.open(), RETRY_STREAM_MS);
      } else {
        this.setState('offline');
      }
    };
    const parse = (ev: MessageEvent) => {
      // remember the position for a stream we open ourselves later (EventSource keeps its own)
      if (ev.lastEventId) this.cursor = ev.lastEventId;
      return JSON.parse(ev.data as string) as FeedMessage;
    };
    src.addEventListener('event', (ev) => {
      const m = parse(ev as MessageEvent);
      if (m.type === 'event') this.emit('event', m.event, m.created);
    });
    src.addEventListener('sensor', (ev) => {
      const m = parse(ev as MessageEvent);
      if (m.type === 'sensor') this.emit('sensor', m.sensor);
    });
    src.addEventListener('command', (ev) => {
      const m = parse(ev as MessageEvent);
      if (m.type === 'command') this.emit('command', m.command);
    });
    src.addEventListener('reset', (ev) => {
      parse(ev as MessageEvent);
      this.emit('reset');
    });
    src.addEventListener('signed-out', () => {
      src.close();
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    });
  }

  private startPolling(): void {
    if (this.pollTimer !== undefined) return;
    this.setState('polling');
    const tick = async () => {
      let ok = true;
      for (const h of this.handlers) if (h.poll) ok = (await h.poll().catch(() => false)) && ok;
      this.setState(ok ? 'polling' : 'offline');
      this.pollTimer = setTimeout(tick, POLL_MS);
    };
    this.pollTimer = setTimeout(tick, POLL_MS);
  }

  private stopPolling(): void {
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    clearTimeout(this.retryTimer);
  }
}

let shared: LiveStream | null = null;
const early: StreamHandlers[] = [];

/**
 * The page's stream, opened with the `liveCursor` of the page's first snapshot (so nothing
 * between the snapshot and the stream is missed). Later calls return the same stream.
 */
export function liveStream(cursor: string | null = null): LiveStream {
  if (!shared) {
    shared = new LiveStream(cursor);
    for (const h of early.splice(0)) shared.on(h);
    shared.start();
  }
  return shared;
}

/** Handlers for every page (sound, title, notifications), attached once the page opens its stream. */
export function onStream(h: StreamHandlers): void {
  if (shared) shared.on(h);
  else early.push(h);
}
