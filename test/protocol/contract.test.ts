import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { buildEventMessage } from '../../daemon/detect/event-message.ts';
import { HeartbeatService } from '../../daemon/health/heartbeat-service.ts';
import { OutboxStore } from '../../daemon/outbox/outbox-store.ts';
import { MqttPublisher } from '../../daemon/publish/mqtt-publisher.ts';
import { decodeSensorMessage, encodeEvent, encodeHeartbeat } from '../../protocol/codec.ts';
import * as messages from '../../protocol/messages.ts';
import { MESSAGE_KINDS, type MessageKind, sensorTopic } from '../../protocol/topics.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from '../daemon/helpers.ts';
import { startAedes } from '../support/aedes.ts';
import { GOLDEN_NOW_MS, GOLDEN_SENSOR_ID, goldenEventFacts, goldenReportFacts } from './golden-facts.ts';

/*
 * The MQTT contract, frozen (birdnet-go mqtt_api_contract_test.go). Sensors in the field run
 * older releases than the bridge, and the other way round, so a published field name never
 * changes. test/protocol/golden/ holds, for every `<Name>MessageSchema` in protocol/messages.ts:
 *   <name>.json          the message with every field the schema knows (nested ones too),
 *   <name>.minimal.json  only the required fields,
 *   <name>.<variant>.json more examples (e.g. status.offline.json).
 * Encoding what the daemon builds today must reproduce them byte for byte (the files are
 * pretty-printed; the wire form is their compact JSON.stringify, key order included).
 */

// Pinned so a release bump or a retrained feature set does not touch the contract fixtures.
vi.mock('../../daemon/version.ts', () => ({ DAEMON_VERSION: '0.1.0' }));
vi.mock('../../core/features/window-features.ts', async (importOriginal) => ({
  ...(await importOriginal<object>()),
  WINDOW_FEATURE_NAMES: (await import('./golden-facts.ts')).GOLDEN_FEATURE_NAMES,
}));

const GOLDEN_DIR = join(import.meta.dirname, 'golden');

function golden(file: string): { text: string; value: Record<string, unknown>; wire: string } {
  const text = readFileSync(join(GOLDEN_DIR, file), 'utf8');
  const value = JSON.parse(text) as Record<string, unknown>;
  return { text, value, wire: JSON.stringify(value) };
}

/** `EventMessageSchema` -> `event`, `CommandResultMessageSchema` -> `command-result`. */
function fixtureName(exportName: string): string {
  return exportName
    .replace(/MessageSchema$/, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .toLowerCase();
}

const SCHEMAS = Object.entries(messages)
  .filter(([name, value]) => name.endsWith('MessageSchema') && value instanceof z.ZodObject)
  .map(([name, schema]) => ({ name, fixture: fixtureName(name), schema: schema as z.ZodObject }));

/** The sensor topic kind a schema is received on, if it is one. */
const KIND_OF: Record<string, MessageKind> = {
  event: 'events',
  status: 'status',
  heartbeat: 'heartbeat',
  'command-result': 'command-results',
  evidence: 'evidence',
};

interface Field {
  path: string;
  /** Optional itself or under an optional parent: a minimal message may leave it out. */
  optional: boolean;
}

/** Every field path a schema knows, descending into nested objects (records are leaves). */
function schemaFields(schema: z.ZodObject, prefix = '', parentOptional = false): Field[] {
  const out: Field[] = [];
  for (const [key, raw] of Object.entries(schema.shape)) {
    const isOptional = raw instanceof z.ZodOptional;
    const inner = isOptional ? (raw as z.ZodOptional).unwrap() : raw;
    const path = prefix + key;
    const optional = parentOptional || isOptional;
    out.push({ path, optional });
    if (inner instanceof z.ZodObject) out.push(...schemaFields(inner, `${path}.`, optional));
  }
  return out;
}

/** The field paths a fixture carries, descending where the schema has a nested object. */
function fixtureFields(value: Record<string, unknown>, schema: z.ZodObject, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    const path = prefix + key;
    out.push(path);
    const raw = schema.shape[key];
    const inner = raw instanceof z.ZodOptional ? (raw as z.ZodOptional).unwrap() : raw;
    if (inner instanceof z.ZodObject && v && typeof v === 'object') {
      out.push(...fixtureFields(v as Record<string, unknown>, inner, `${path}.`));
    }
  }
  return out;
}

const files = readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.json'));

describe('golden fixtures: every message has them', () => {
  it('finds the three sensor messages (so the discovery below cannot silently find none)', () => {
    expect(SCHEMAS.map((s) => s.fixture)).toEqual(expect.arrayContaining(['event', 'status', 'heartbeat']));
  });

  for (const { name, fixture } of SCHEMAS) {
    it(`${name}: ${fixture}.json and ${fixture}.minimal.json exist`, () => {
      expect(files).toContain(`${fixture}.json`);
      expect(files).toContain(`${fixture}.minimal.json`);
    });
  }

  it('every golden file belongs to a message schema', () => {
    const known = new Set(SCHEMAS.map((s) => s.fixture));
    expect(files.filter((f) => !known.has(f.split('.')[0]!))).toEqual([]);
  });
});

describe.each(SCHEMAS)('$name', ({ fixture, schema }) => {
  const own = files.filter((f) => f.split('.')[0] === fixture);
  const fields = schemaFields(schema);

  it.each(own)('accepts %s unchanged (nothing stripped, nothing coerced)', (file) => {
    const { value, wire } = golden(file);
    const parsed = schema.safeParse(value);
    expect(parsed.success, parsed.error?.message).toBe(true);
    expect(parsed.data).toEqual(value);
    const kind = KIND_OF[fixture];
    if (kind) {
      // the bridge's receive path, as bytes off the wire
      const decoded = decodeSensorMessage(kind, GOLDEN_SENSOR_ID, Buffer.from(wire));
      expect(decoded.message).toEqual(value);
    }
  });

  it(`${fixture}.json carries every field the schema knows: a renamed or removed field fails here`, () => {
    const carried = fixtureFields(golden(`${fixture}.json`).value, schema).sort();
    expect(carried).toEqual(fields.map((f) => f.path).sort());
  });

  it(`${fixture}.minimal.json is exactly the required fields: a new field must be optional`, () => {
    const carried = fixtureFields(golden(`${fixture}.minimal.json`).value, schema).sort();
    expect(carried).toEqual(
      fields
        .filter((f) => !f.optional)
        .map((f) => f.path)
        .sort(),
    );
  });

  it('refuses the message without any one of its required fields', () => {
    const { value } = golden(`${fixture}.json`);
    for (const { path } of fields.filter((f) => !f.optional)) {
      const copy = structuredClone(value);
      const keys = path.split('.');
      let node: Record<string, unknown> = copy;
      for (const k of keys.slice(0, -1)) node = node[k] as Record<string, unknown>;
      delete node[keys.at(-1)!];
      const parsed = schema.safeParse(copy);
      expect(parsed.success, `without ${path}`).toBe(false);
      expect(parsed.error?.issues.map((i) => i.path.join('.'))).toContain(path);
    }
  });
});

describe('today’s daemon encodes the golden bytes', () => {
  const teardown = new Teardown();
  afterEach(async () => {
    vi.restoreAllMocks();
    await teardown.run();
  });

  it('event: a confirmed scream with location, features and notes', () => {
    const bytes = encodeEvent(buildEventMessage(goldenEventFacts()));
    expect(bytes.toString('utf8')).toBe(golden('event.json').wire);
  });

  it('event: a near-miss report with only the required fields', () => {
    const bytes = encodeEvent(buildEventMessage(goldenReportFacts()));
    expect(bytes.toString('utf8')).toBe(golden('event.minimal.json').wire);
  });

  it('heartbeat', () => {
    // CPU and RSS come from the process: pin them at the boundary.
    vi.spyOn(performance, 'now').mockReturnValueOnce(1_000).mockReturnValueOnce(61_000);
    vi.spyOn(process, 'cpuUsage').mockReturnValue({ user: 1_200_000, system: 300_000 });
    vi.spyOn(process.memoryUsage, 'rss').mockReturnValue(154_140_672);
    let now = GOLDEN_NOW_MS - 3_723_000;
    const service = new HeartbeatService({
      sensorId: GOLDEN_SENSOR_ID,
      modelVersion: goldenEventFacts().modelVersion,
      intervalS: 60,
      clock: { now: () => now },
      facts: () => ({
        outboxDepth: 2,
        outboxFull: false,
        outboxWritable: true,
        outboxLost: 0,
        droppedFrames: 512,
        inputLevelDbfs: -48.27,
        lastMaxProbability: 0.42,
        health: { health: 'silent', since: '2026-03-14T09:21:53.589Z' },
      }),
      emit: () => {},
    });
    now = GOLDEN_NOW_MS;
    expect(encodeHeartbeat(service.message()).toString('utf8')).toBe(golden('heartbeat.json').wire);
  });

  it('status: online on connect, offline as the last will and on a clean stop (over a real broker)', async () => {
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const wills: Buffer[] = [];
    broker.broker.on('client', (client) => {
      const will = (client as unknown as { will?: { payload: Buffer } }).will;
      if (will) wills.push(Buffer.from(will.payload));
    });
    const state = await tempDir('sw-golden-');
    teardown.add(state.remove);
    const outbox = new OutboxStore(state.dir, { maxRows: 100 });
    teardown.add(() => outbox.close());
    const publisher = new MqttPublisher({
      mqtt: daemonConfig({ stateDir: state.dir, mqtt: { url: broker.url } }).mqtt,
      sensorId: GOLDEN_SENSOR_ID,
      topicRoot: 'screamwatch',
      modelVersion: goldenEventFacts().modelVersion,
      outbox,
      outboxWritable: () => true,
      clock: { now: () => GOLDEN_NOW_MS },
      logger: captureLogs().logger,
    });
    teardown.add(() => publisher.stop());
    const topic = sensorTopic('screamwatch', GOLDEN_SENSOR_ID, 'status');
    const statuses = () => broker.messages.filter((m) => m.topic === topic);
    // the input classifier's state rides on the retained online status (not on the offline will)
    publisher.setHealth('silent', '2026-03-14T09:21:53.589Z');
    publisher.setDetection({
      threshold: 0.72,
      k: 1,
      n: 1,
      levelGateDbfs: -60,
      reportThreshold: null,
      remote: ['threshold'],
    });
    publisher.setModelRollback({
      from: 'forest-2026-03-10-d4e5f6a',
      to: 'forest-2026-03-01-a1b2c3d',
      at: '2026-03-14T09:20:00.000Z',
      reason: 'restarted 42 s after the swap, within control.modelTrialS (600 s)',
    });
    await publisher.start();
    await broker.waitFor(() => statuses().length >= 1);
    await publisher.stop();
    await broker.waitFor(() => statuses().length >= 2);
    expect(statuses().map((m) => [m.payload.toString('utf8'), m.retain])).toEqual([
      [golden('status.json').wire, true],
      [golden('status.offline.json').wire, true],
    ]);
    expect(wills.map((w) => w.toString('utf8'))).toEqual([golden('status.offline.json').wire]);
  });

  it('the sensor topic kinds are the ones these fixtures cover', () => {
    expect([...MESSAGE_KINDS].sort()).toEqual(Object.values(KIND_OF).sort());
  });
});
