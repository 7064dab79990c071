import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OutboxStore } from '../../daemon/outbox/outbox-store.ts';
import { Teardown, tempDir } from './helpers.ts';

const teardown = new Teardown();
afterEach(() => teardown.run());

async function store(maxRows = 100): Promise<{ dir: string; open: () => OutboxStore }> {
  const t = await tempDir('sw-outbox-');
  teardown.add(t.remove);
  return {
    dir: t.dir,
    open: () => {
      const s = new OutboxStore(t.dir, { maxRows });
      teardown.add(() => s.close());
      return s;
    },
  };
}

const buf = (s: string) => Buffer.from(s);

describe('OutboxStore (SQLite)', () => {
  it('keeps rows in insertion order across a reopen, removes on ack', async () => {
    const { dir, open } = await store();
    const a = open();
    const ids = ['A', 'B', 'C'].map((x, i) => a.add('event', 't/events', buf(x), 1000 + i, `E${x}`).id!);
    a.remove(ids[1]!);
    a.remove(ids[1]!); // a duplicate PUBACK is harmless
    a.close();
    expect(existsSync(join(dir, 'outbox.sqlite'))).toBe(true);
    const b = open();
    expect(b.depth).toBe(2);
    expect(b.peek(0, 10).map((r) => [r.payload.toString(), r.eventId, r.kind])).toEqual([
      ['A', 'EA', 'event'],
      ['C', 'EC', 'event'],
    ]);
    expect(b.peek(ids[0]!, 10).map((r) => r.payload.toString())).toEqual(['C']);
    // AUTOINCREMENT: ids never go backwards, even after the newest row was deleted
    b.remove(ids[2]!);
    expect(b.add('event', 't/events', buf('D'), 2000).id!).toBeGreaterThan(ids[2]!);
  });

  it('keeps only the newest heartbeat', async () => {
    const s = (await store()).open();
    s.add('heartbeat', 't/hb', buf('1'), 1);
    s.add('event', 't/events', buf('E'), 2);
    s.add('heartbeat', 't/hb', buf('2'), 3);
    expect(s.peek(0, 10).map((r) => r.payload.toString())).toEqual(['E', '2']);
    expect(s.depth).toBe(2);
  });

  it('at the cap drops heartbeats, then reports, and never an event', async () => {
    const s = (await store(10)).open();
    s.add('heartbeat', 't/hb', buf('hb'), 0);
    for (let i = 0; i < 4; i++) s.add('report', 't/events', buf(`r${i}`), i);
    for (let i = 0; i < 5; i++) s.add('event', 't/events', buf(`e${i}`), i);
    expect(s.depth).toBe(10);
    // full: the heartbeat goes first
    let r = s.add('event', 't/events', buf('e5'), 10);
    expect(r).toMatchObject({ full: true, evicted: 1 });
    // then the oldest report
    r = s.add('event', 't/events', buf('e6'), 11);
    expect(r).toMatchObject({ full: true, evicted: 1 });
    expect(s.peek(0, 20)[0]!.payload.toString()).toBe('r1');
    for (let i = 7; i < 12; i++) s.add('event', 't/events', buf(`e${i}`), i);
    // only events left: a new event is still accepted (over the cap), a report is refused
    expect(s.depthOf('report')).toBe(0);
    r = s.add('event', 't/events', buf('e12'), 20);
    expect(r.id).not.toBeNull();
    expect(r.full).toBe(true);
    expect(s.add('report', 't/events', buf('late report'), 21)).toMatchObject({ id: null, full: true });
    expect(s.add('heartbeat', 't/hb', buf('late hb'), 22)).toMatchObject({ id: null, full: true });
    expect(s.depthOf('event')).toBe(s.depth);
    expect(s.peek(0, 100).map((x) => x.payload.toString())).toEqual(
      Array.from({ length: 13 }, (_, i) => `e${i}`).slice(0, 13),
    );
  });

  it('an unusable state dir is OUTBOX_OPEN_FAILED naming the file', async () => {
    expect(() => new OutboxStore('/proc/screamwatch-nope', { maxRows: 10 })).toThrow(
      /cannot open outbox \/proc\/screamwatch-nope\/outbox\.sqlite/,
    );
  });
});
