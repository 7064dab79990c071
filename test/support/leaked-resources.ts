import { createHook } from 'node:async_hooks';
import { readdirSync, readlinkSync } from 'node:fs';
import { Server } from 'node:net';

/**
 * The leaked-resource check behind test/support/leak-check.ts (the vitest setup file), in the
 * manner of MQTT.js's test/leaked.ts and why-is-node-running. Two views of "still open":
 *
 * - `process.getActiveResourcesInfo()`: the names of everything that keeps the event loop alive
 *   (ref'd handles, requests in flight, ref'd timers). Cheap and complete for what it covers, but
 *   blind to unref'd handles and timers, and it says nothing about where a resource came from.
 * - `ResourceTracker` (async_hooks): every socket, server, pipe, child, worker, file handle,
 *   watcher, signal listener and timer created since the file started, with the stack that
 *   created it, until it is destroyed. This is what catches a service whose stop() leaves an
 *   unref'd interval behind, and what names the line that opened a leaked socket.
 * - `openFiles()` (/proc/self/fd): regular files held open. A SQLite database that was never
 *   closed (better-sqlite3 opens it in C, invisible to both views above) shows up here.
 *
 * `findLeaks` is the pure part (before/after lists in, leaks out); `settleLeaks` polls it for a
 * bounded time so that closes already under way (a socket's close callback, a child's exit) can
 * finish before anything is called a leak.
 */

/** The async_hooks types the tracker records, i.e. resources that stay open until closed. */
const TRACKED_TYPES = new Set([
  'TCPSERVERWRAP',
  'TCPWRAP',
  'PIPESERVERWRAP',
  'PIPEWRAP',
  'UDPWRAP',
  'PROCESSWRAP',
  'WORKER',
  'MESSAGEPORT',
  'FILEHANDLE',
  'FSEVENTWRAP',
  'STATWATCHER',
  'SIGNALWRAP',
  'TTYWRAP',
  'Timeout',
]);

/**
 * One name per kind of resource, shared by getActiveResourcesInfo()'s names (TCPServerWrap)
 * and async_hooks' types (TCPSERVERWRAP), so the two views can be compared.
 */
const FAMILIES: Record<string, string> = {
  TCPServerWrap: 'tcp server',
  TCPSERVERWRAP: 'tcp server',
  TCPSocketWrap: 'tcp socket',
  TCPWRAP: 'tcp socket',
  // getActiveResourcesInfo() names a listening pipe and a connected one both PipeWrap.
  PipeWrap: 'pipe',
  PIPEWRAP: 'pipe',
  PIPESERVERWRAP: 'pipe',
  UDPWrap: 'udp socket',
  UDPWRAP: 'udp socket',
  ProcessWrap: 'child process',
  PROCESSWRAP: 'child process',
  WORKER: 'worker thread',
  MessagePort: 'message port',
  MESSAGEPORT: 'message port',
  FileHandle: 'file handle',
  FILEHANDLE: 'file handle',
  FSEventWrap: 'fs.watch watcher',
  FSEVENTWRAP: 'fs.watch watcher',
  StatWatcher: 'fs.watchFile watcher',
  STATWATCHER: 'fs.watchFile watcher',
  SignalWrap: 'signal listener',
  SIGNALWRAP: 'signal listener',
  TTYWrap: 'tty',
  TTYWRAP: 'tty',
  Timeout: 'timer',
  Immediate: 'immediate',
  FSReqCallback: 'fs request',
  FSReqPromise: 'fs request',
  GetAddrInfoReqWrap: 'dns lookup',
  GetNameInfoReqWrap: 'dns lookup',
  QueryReqWrap: 'dns lookup',
  TCPConnectWrap: 'tcp connect',
  PipeConnectWrap: 'pipe connect',
  WriteWrap: 'stream write',
  ShutdownWrap: 'stream shutdown',
};

export function resourceFamily(name: string): string {
  return FAMILIES[name] ?? name;
}

/** A tracked resource that is still open, as the tracker saw it. */
export interface LiveResource {
  /** async_hooks type: TCPSERVERWRAP, Timeout, ... */
  type: string;
  /** false for an unref'd handle or timer; undefined where node cannot tell (file handles). */
  refed: boolean | undefined;
  /** The creating stack with async_hooks' own frames removed, innermost first. */
  frames: readonly string[];
  /** What it is: a file handle's path, a server's address, a child's pid and command. */
  detail?: string;
}

/**
 * A resource a file may leave open. `createdBy` is matched against the creating frames; every
 * rule says why in `reason`, which is also what the README and reviews read.
 */
export interface AllowRule {
  family: string;
  /**
   * Matched against the creator: the innermost frame outside node's own modules, i.e. the code
   * that called setTimeout / net.createServer / spawn; `(untracked)` for what only
   * getActiveResourcesInfo() saw; for an open file, its path.
   */
  createdBy: RegExp;
  /** Only in this test file (path relative to the repository, forward slashes); all files if absent. */
  file?: string;
  reason: string;
}

export interface Leak {
  family: string;
  type: string;
  refed: boolean | undefined;
  /** Where it was created, innermost first; empty when the tracker did not see it created. */
  frames: readonly string[];
  detail?: string;
}

export interface LeakInput {
  /** getActiveResourcesInfo() when the file started. */
  baseline: readonly string[];
  /** getActiveResourcesInfo() now. */
  current: readonly string[];
  /** Tracked resources created since the file started and not destroyed. */
  live: readonly LiveResource[];
  /** openFiles() when the file started, and now. */
  baselineFiles: readonly string[];
  currentFiles: readonly string[];
}

function countFamilies(names: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of names) {
    const family = resourceFamily(name);
    counts.set(family, (counts.get(family) ?? 0) + 1);
  }
  return counts;
}

const NODE_FRAME = /^node:|\(node:/;

/** The innermost frame outside node's own modules (and past any `(from SERVER)` marker). */
export function creatorFrame(frames: readonly string[]): string {
  return frames.find((f) => !NODE_FRAME.test(f) && !f.startsWith('(from ')) ?? '(untracked)';
}

function allowed(
  rules: readonly AllowRule[],
  file: string,
  family: string,
  frames: readonly string[],
  detail?: string,
): boolean {
  const creator = detail ?? creatorFrame(frames);
  return rules.some(
    (rule) =>
      rule.family === family &&
      (rule.file === undefined || rule.file === file) &&
      rule.createdBy.test(creator),
  );
}

/**
 * What `file` leaves open: every tracked resource still alive and not allowed; per family,
 * whatever getActiveResourcesInfo() counts beyond the baseline that no tracked ref'd resource
 * accounts for (a resource type the tracker does not record, a request stuck in flight); and
 * every regular file open now that was not open at the start and is not a tracked file handle.
 */
export function findLeaks(input: LeakInput, rules: readonly AllowRule[], file: string): Leak[] {
  const leaks: Leak[] = [];
  const explained = new Map<string, number>();
  for (const res of input.live) {
    const family = resourceFamily(res.type);
    // An allowed resource that keeps the loop alive still explains one active-resource entry.
    if (res.refed !== false) explained.set(family, (explained.get(family) ?? 0) + 1);
    if (allowed(rules, file, family, res.frames)) continue;
    leaks.push({ family, type: res.type, refed: res.refed, frames: res.frames, ...detailOf(res) });
  }
  const before = countFamilies(input.baseline);
  const typeOf = new Map(input.current.map((name) => [resourceFamily(name), name]));
  for (const [family, count] of countFamilies(input.current)) {
    const unexplained = count - (before.get(family) ?? 0) - (explained.get(family) ?? 0);
    if (unexplained <= 0 || allowed(rules, file, family, [])) continue;
    for (let i = 0; i < unexplained; i++) {
      leaks.push({ family, type: typeOf.get(family) ?? family, refed: true, frames: [] });
    }
  }
  const filesBefore = new Map<string, number>();
  for (const path of input.baselineFiles) filesBefore.set(path, (filesBefore.get(path) ?? 0) + 1);
  for (const res of input.live) {
    if (res.type === 'FILEHANDLE' && res.detail !== undefined)
      filesBefore.set(res.detail, (filesBefore.get(res.detail) ?? 0) + 1);
  }
  for (const path of input.currentFiles) {
    const seen = filesBefore.get(path) ?? 0;
    if (seen > 0) {
      filesBefore.set(path, seen - 1);
      continue;
    }
    if (allowed(rules, file, 'open file', [], path)) continue;
    leaks.push({ family: 'open file', type: 'fd', refed: undefined, frames: [], detail: path });
  }
  return leaks;
}

function detailOf(res: LiveResource): { detail?: string } {
  return res.detail === undefined ? {} : { detail: res.detail };
}

/**
 * The regular files this process holds open (targets of /proc/self/fd, without /dev and /proc):
 * [] where there is no /proc. A path repeats once per descriptor.
 */
export function openFiles(): string[] {
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('/') && !target.startsWith('/dev/') && !target.startsWith('/proc/'))
        out.push(target);
    } catch {
      // closed between readdir and readlink (the readdir's own descriptor, for one)
    }
  }
  return out;
}

function fdPath(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

export interface SettleOptions {
  timeoutMs: number;
  intervalMs: number;
  sleep: (ms: number) => Promise<void>;
  now?: () => number;
}

/**
 * Polls `sample` until `findLeaks` reports nothing or `timeoutMs` has passed; returns the last
 * leaks found (empty when everything closed in time). Bounded: at most timeoutMs plus one
 * interval and one sample.
 */
export async function settleLeaks(
  sample: () => LeakInput,
  rules: readonly AllowRule[],
  file: string,
  opts: SettleOptions,
): Promise<Leak[]> {
  const now = opts.now ?? Date.now;
  const deadline = now() + opts.timeoutMs;
  for (;;) {
    const leaks = findLeaks(sample(), rules, file);
    if (leaks.length === 0 || now() >= deadline) return leaks;
    await opts.sleep(opts.intervalMs);
  }
}

/** Frames worth reading: the creator's own code, not node's, vitest's or a bare `new Promise`. */
function sourceFrames(frames: readonly string[], max: number): string[] {
  const own = frames.filter(
    (f) =>
      !NODE_FRAME.test(f) &&
      !f.includes('/node_modules/') &&
      !f.includes('<anonymous>') &&
      !f.startsWith('(from '),
  );
  return (own.length > 0 ? own : frames).slice(0, max);
}

/** The innermost library frame, unless it is vitest running the test. */
function libraryFrame(frames: readonly string[]): string | undefined {
  return frames.find((f) => f.includes('/node_modules/') && !/\/node_modules\/(@vitest|vitest)\//.test(f));
}

export function formatLeaks(
  file: string,
  leaks: readonly Leak[],
  waitedMs: number,
  root = process.cwd(),
): string {
  const short = (frame: string) => frame.split(`file://${root}/`).join('').split(`${root}/`).join('');
  const byFamily = new Map<string, number>();
  for (const leak of leaks) byFamily.set(leak.family, (byFamily.get(leak.family) ?? 0) + 1);
  const summary = [...byFamily].map(([family, n]) => `${n} ${family}`).join(', ');
  const lines = [`${file} left open after its tests and hooks (waited ${waitedMs} ms): ${summary}`];
  for (const leak of leaks) {
    const ref = leak.refed === false ? ', unref’d' : '';
    lines.push(`- ${leak.family} (${leak.type}${ref})`);
    if (leak.detail !== undefined) lines.push(`    ${leak.detail}`);
    if (leak.frames.length === 0) {
      if (leak.detail === undefined) {
        lines.push('    created where not known (seen only by process.getActiveResourcesInfo())');
      }
      continue;
    }
    const shown = sourceFrames(leak.frames, 4);
    const parent = leak.frames.find((f) => f.startsWith('(from '));
    if (parent !== undefined)
      lines.push(`    opened by (accepted on) the ${resourceFamily(parent.slice(6, -1))} created`);
    for (const frame of shown) lines.push(`    at ${short(frame)}`);
    const lib = libraryFrame(leak.frames);
    if (lib !== undefined && !shown.includes(lib)) lines.push(`    in ${short(lib)}`);
  }
  return lines.join('\n');
}

interface Record_ {
  type: string;
  resource: WeakRef<object>;
  /** Error.captureStackTrace target: V8 formats the stack only if we read it (only for leaks). */
  stack: { stack?: string };
  /** The tracked resource that triggered it (the server of an accepted socket), at creation. */
  parent: Record_ | undefined;
}

const HOOK_FRAME = /node:internal\/async_hooks|node:internal\/timers|leaked-resources\.ts/;

/**
 * Records tracked resources from creation to destruction with async_hooks. The stack is captured
 * unformatted at creation and formatted only for what is still open at the end, so the cost per
 * timer is one captureStackTrace. Resources created while `untracked()` runs (the check's own
 * polling timers) are not recorded.
 */
export class ResourceTracker {
  private readonly live = new Map<number, Record_>();
  private paused = false;
  private readonly hook = createHook({
    init: (asyncId, type, triggerId, resource) => {
      if (this.paused || !TRACKED_TYPES.has(type)) return;
      const stack = captureStack();
      this.live.set(asyncId, {
        type,
        resource: new WeakRef(resource),
        stack,
        parent: this.live.get(triggerId),
      });
    },
    destroy: (asyncId) => {
      this.live.delete(asyncId);
    },
  });

  /**
   * `server.listen(port, host)` creates the server's handle after a lookup, from a callback with
   * no JS frame of the caller's, so the tracker keeps the stack of each listen() call.
   */
  private readonly listenStacks = new WeakMap<object, { stack?: string }>();
  private originalListen: typeof Server.prototype.listen | null = null;

  start(): this {
    this.hook.enable();
    const original = Server.prototype.listen;
    const stacks = this.listenStacks;
    this.originalListen = original;
    Server.prototype.listen = function (this: Server, ...args: unknown[]) {
      stacks.set(this, captureStack());
      return original.apply(this, args as Parameters<typeof original>);
    } as typeof original;
    return this;
  }

  stop(): void {
    this.hook.disable();
    if (this.originalListen) Server.prototype.listen = this.originalListen;
    this.originalListen = null;
    this.live.clear();
  }

  /** Runs `fn` (synchronous) without recording what it creates. */
  untracked<T>(fn: () => T): T {
    this.paused = true;
    try {
      return fn();
    } finally {
      this.paused = false;
    }
  }

  private frames(rec: Record_, depth = 0): string[] {
    const lines = stackFrames(rec.stack);
    if (lines.some((l) => !NODE_FRAME.test(l))) return lines;
    const owner = ownerOf(rec.resource.deref());
    const listened = owner === undefined ? undefined : this.listenStacks.get(owner);
    if (listened !== undefined) return stackFrames(listened);
    // A socket accepted by a server is created from a native callback with no JS stack of its
    // own: name the resource that triggered it (the server) instead.
    if (rec.parent !== undefined && depth < 3) {
      return [`(from ${rec.parent.type})`, ...this.frames(rec.parent, depth + 1)];
    }
    return lines;
  }

  liveResources(): LiveResource[] {
    const out: LiveResource[] = [];
    for (const rec of this.live.values()) {
      const resource = rec.resource.deref() as
        | { hasRef?: () => boolean; _destroyed?: boolean; fd?: unknown }
        | undefined;
      // A Timeout that was collected or has run is gone even if its destroy hook is still queued.
      if (resource === undefined || resource._destroyed === true) continue;
      const refed = typeof resource.hasRef === 'function' ? resource.hasRef() : undefined;
      if (rec.type === 'FILEHANDLE') {
        // A closed FileHandle's destroy hook waits for garbage collection; its fd is negative
        // from close() on. Node creates it from native code with no JS stack, so name the file.
        const fd = typeof resource.fd === 'number' ? resource.fd : -1;
        if (fd < 0) continue;
        out.push({ type: rec.type, refed, frames: this.frames(rec), detail: fdPath(fd) ?? `fd ${fd}` });
        continue;
      }
      const detail = describeHandle(rec.type, resource);
      out.push({
        type: rec.type,
        refed,
        frames: this.frames(rec),
        ...(detail === undefined ? {} : { detail }),
      });
    }
    return out;
  }
}

function captureStack(): { stack?: string } {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  Error.captureStackTrace(holder);
  Error.stackTraceLimit = limit;
  return holder;
}

function stackFrames(holder: { stack?: string }): string[] {
  return (holder.stack ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().replace(/^at /, ''))
    .filter((l) => l !== '' && !HOOK_FRAME.test(l));
}

/** The JS object a native handle belongs to (net.Server, net.Socket, ChildProcess): node's owner_symbol. */
function ownerOf(handle: object | undefined): object | undefined {
  if (handle === undefined) return undefined;
  const sym = Object.getOwnPropertySymbols(handle).find((x) => x.description === 'owner_symbol');
  const owner = sym === undefined ? undefined : (handle as Record<symbol, unknown>)[sym];
  return typeof owner === 'object' && owner !== null ? owner : undefined;
}

interface NativeHandle {
  getsockname?: (out: Record<string, unknown>) => number;
  getpeername?: (out: Record<string, unknown>) => number;
  pid?: number;
}

/** A server's address, a socket's peer, a child's pid and command: which one leaked. */
function describeHandle(type: string, resource: object): string | undefined {
  const h = resource as NativeHandle;
  const addr = (fn: 'getsockname' | 'getpeername'): string | undefined => {
    const out: Record<string, unknown> = {};
    try {
      const get = h[fn];
      if (typeof get !== 'function' || get.call(h, out) !== 0) return undefined;
    } catch {
      return undefined;
    }
    return out.port === undefined ? undefined : `${String(out.address)}:${String(out.port)}`;
  };
  if (type === 'TCPSERVERWRAP') {
    const a = addr('getsockname');
    return a && `listening on ${a}`;
  }
  if (type === 'TCPWRAP') {
    const a = addr('getpeername');
    return a && `connected to ${a}`;
  }
  if (type === 'PROCESSWRAP' && typeof h.pid === 'number') {
    const child = ownerOf(resource) as { spawnargs?: string[] } | undefined;
    const cmd = child?.spawnargs?.join(' ') ?? '';
    return `pid ${h.pid}${cmd ? `: ${cmd.length > 120 ? `${cmd.slice(0, 117)}...` : cmd}` : ''}`;
  }
  return undefined;
}
