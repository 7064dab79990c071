import { afterEach, describe, expect, it } from 'vitest';
import { DaemonApp } from '../../daemon/app.ts';
import { startAedes } from '../support/aedes.ts';
import { tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from './helpers.ts';

const teardown = new Teardown();
afterEach(() => teardown.run());

describe('DaemonApp lifecycle', () => {
  it('a failing step rolls back what started, in reverse: MQTT says offline, the outbox is closed', async () => {
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    const modelPath = await tinyModelFile(state.dir);
    const logs = captureLogs();
    const app = new DaemonApp({
      config: daemonConfig({
        stateDir: state.dir,
        audio: { source: `file:${state.dir}/missing.wav` },
        detection: { modelPath },
        mqtt: { url: broker.url },
      }),
      logger: logs.logger,
    });
    // the publisher connects while later steps start; capture then fails
    await expect(app.start()).rejects.toMatchObject({ code: 'AUDIO_READ_FAILED' });
    expect(logs.find(/capture failed to start/)).toHaveLength(1);
    expect(app.outbox.isOpen).toBe(false);
    expect(app.publisher.isConnected).toBe(false);
    await app.stop(); // stopping after a failed start is harmless
    const statuses = broker.messages
      .filter((m) => m.topic.endsWith('/status'))
      .map((m) => JSON.parse(m.payload.toString()).state);
    if (statuses.length) expect(statuses.at(-1)).toBe('offline');
  });

  it('a missing model is MODEL_NOT_FOUND naming the file, before anything else starts', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const app = new DaemonApp({
      config: daemonConfig({
        stateDir: `${state.dir}/state`,
        detection: { modelPath: `${state.dir}/nope.json` },
      }),
      logger: captureLogs().logger,
    });
    await expect(app.start()).rejects.toThrow(/cannot read model file .*nope\.json: ENOENT/);
    expect(app.outbox).toBeUndefined();
  });

  it('stop() during start() cancels the remaining steps', async () => {
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    const modelPath = await tinyModelFile(state.dir);
    const app = new DaemonApp({
      config: daemonConfig({
        stateDir: state.dir,
        audio: { source: 'file:/dev/null' },
        detection: { modelPath },
        mqtt: { url: broker.url },
      }),
      logger: captureLogs().logger,
    });
    const starting = app.start();
    const stopping = app.stop();
    await expect(starting).rejects.toMatchObject({ code: 'DAEMON_START_ABORTED' });
    await stopping;
    await eventually(() => app.outbox === undefined || !app.outbox.isOpen, 2000, 'outbox closed');
  });
});
