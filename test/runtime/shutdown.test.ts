import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ShutdownRequest, type SignalTarget } from '../../runtime/shutdown.ts';

function fakeProcess(): EventEmitter & SignalTarget {
  return new EventEmitter() as EventEmitter & SignalTarget;
}

describe('ShutdownRequest', () => {
  it('the first signal requests shutdown; a second one is reported, never run twice', async () => {
    const target = fakeProcess();
    const shutdown = new ShutdownRequest();
    const first: string[] = [];
    const repeats: string[] = [];
    const remove = shutdown.handleSignals({
      target,
      onFirst: (s) => first.push(s),
      onRepeat: (s) => repeats.push(s),
    });
    expect(shutdown.isRequested).toBe(false);
    target.emit('SIGTERM', 'SIGTERM');
    target.emit('SIGTERM', 'SIGTERM');
    target.emit('SIGINT', 'SIGINT');
    await expect(shutdown.requested).resolves.toBe('SIGTERM');
    expect(first).toEqual(['SIGTERM']);
    expect(repeats).toEqual(['SIGTERM', 'SIGINT']);
    remove();
    expect(target.listenerCount('SIGTERM')).toBe(0);
    expect(target.listenerCount('SIGINT')).toBe(0);
  });

  it('a request by the program counts as the first; a later signal only repeats', async () => {
    const target = fakeProcess();
    const shutdown = new ShutdownRequest();
    const seen: string[] = [];
    shutdown.handleSignals({
      target,
      onFirst: () => seen.push('first'),
      onRepeat: (s) => seen.push(`again ${s}`),
    });
    expect(shutdown.request('file done')).toBe(true);
    expect(shutdown.request('other')).toBe(false);
    target.emit('SIGTERM', 'SIGTERM');
    await expect(shutdown.requested).resolves.toBe('file done');
    expect(shutdown.reason).toBe('file done');
    expect(seen).toEqual(['again SIGTERM']);
  });
});
