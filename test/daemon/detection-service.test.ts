import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAudioFile } from '../../core/audio/decode.ts';
import { WindowFeatureStream } from '../../core/features/window-stream.ts';
import { loadModelFile } from '../../core/model/load.ts';
import type { ScreamModel } from '../../core/model/scream-model.ts';
import { FrameQueue } from '../../daemon/capture/frame-queue.ts';
import { DetectionService } from '../../daemon/detect/detection-service.ts';
import { deviceInfo, featureSummary } from '../../daemon/detect/event-message.ts';
import type { EventMessage, EvidenceMessage } from '../../protocol/messages.ts';
import { screamSequenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { captureLogs, daemonConfig, tempDir } from './helpers.ts';

describe('DetectionService: the event message comes from the confirmer event', () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let model: ScreamModel;
  beforeAll(async () => {
    dir = await tempDir();
    model = loadModelFile(await tinyModelFile(dir.dir));
  });
  afterAll(() => dir.remove());

  it("carries the peak window's features and probability, with no window history of its own", async () => {
    const seq = await screamSequenceWav(dir.dir, 'seq', 1, { gapS: 3, screamS: 2 });
    const { samples } = await decodeAudioFile(seq.path);
    const queue = new FrameQueue(16000 * 60);
    const committed: EventMessage[] = [];
    const service = new DetectionService({
      model,
      detection: daemonConfig({ stateDir: dir.dir }).detection,
      sensorId: 'hall-1',
      audioSource: 'file:test',
      deviceInfo: deviceInfo(),
      location: undefined,
      queue,
      sink: { commit: (_kind, m) => void committed.push(m) },
      clock: { now: () => 1_700_000_000_000 },
      logger: captureLogs().logger,
    });
    for (let at = 0; at < samples.length; at += 4000) queue.push(samples.slice(at, at + 4000));
    service.drain(Number.POSITIVE_INFINITY);
    expect(committed).toHaveLength(1);
    const msg = committed[0]!;
    // recompute every window independently and find the one the message must describe
    const windows = new WindowFeatureStream().push(samples);
    const probs = model.predict(windows.map((w) => w.values));
    // the peak as of confirmation: the best window among the hits that completed k of n
    const { threshold, confirm } = model.meta;
    const hits: number[] = [];
    let peak = -1;
    for (let i = 0; i < windows.length && peak < 0; i++) {
      if (probs[i]! < threshold) continue;
      hits.push(i);
      const recent = hits.filter((h) => h > i - confirm.n);
      if (recent.length >= confirm.k) peak = recent.reduce((a, b) => (probs[b]! > probs[a]! ? b : a));
    }
    expect(peak).toBeGreaterThanOrEqual(0);
    expect(msg.screamProbability).toBe(probs[peak]);
    expect(msg.features).toEqual(featureSummary(windows[peak]!.values));
    // no window history with features of its own (the confirmer's event carries the peak)
    expect(Object.keys(service)).not.toContain('recent');
    // the evidence: scores of the windows up to the confirmation, the confirming one last at t = 0
    const tl = msg.timeline!;
    expect(tl.length).toBeGreaterThanOrEqual(2);
    expect(tl.at(-1)!.t).toBe(0);
    expect(tl[0]!.t).toBeGreaterThanOrEqual(-10.5);
    for (let i = 1; i < tl.length; i++) expect(tl[i]!.t - tl[i - 1]!.t).toBeCloseTo(0.512, 3);
    const confirming = hits.at(-1)!;
    expect(tl.at(-1)!.p).toBeCloseTo(probs[confirming]!, 4);
    expect(tl.map((w) => w.p)).toEqual(
      probs.slice(confirming - tl.length + 1, confirming + 1).map((p) => Math.round(p * 1e4) / 1e4),
    );
  });

  it('sends the whole timeline, 10 s before to 10 s after, once the 10 s after have passed (and at stop)', async () => {
    const seq = await screamSequenceWav(dir.dir, 'evidence', 1, { gapS: 12, screamS: 2 });
    const { samples } = await decodeAudioFile(seq.path);
    const queue = new FrameQueue(16000 * 60);
    const committed: EventMessage[] = [];
    const evidence: EvidenceMessage[] = [];
    const service = new DetectionService({
      model,
      detection: daemonConfig({ stateDir: dir.dir }).detection,
      sensorId: 'hall-1',
      audioSource: 'file:test',
      deviceInfo: deviceInfo(),
      location: undefined,
      queue,
      sink: { commit: (_kind, m) => void committed.push(m), evidence: (m) => void evidence.push(m) },
      clock: { now: () => 1_700_000_000_000 },
      logger: captureLogs().logger,
    });
    await service.start();
    // audio up to 9 s after the scream's onset: confirmed, but the 10 s after are not there yet
    const cut = Math.round((seq.onsetsS[0]! + 9) * 16000);
    for (let at = 0; at < cut; at += 4000) queue.push(samples.slice(at, Math.min(cut, at + 4000)));
    service.drain(Number.POSITIVE_INFINITY);
    expect(committed).toHaveLength(1);
    expect(evidence).toHaveLength(0);
    for (let at = cut; at < samples.length; at += 4000) queue.push(samples.slice(at, at + 4000));
    service.drain(Number.POSITIVE_INFINITY);
    expect(evidence).toHaveLength(1);
    const e = evidence[0]!;
    expect(e).toMatchObject({
      eventId: committed[0]!.eventId,
      sensorId: 'hall-1',
      timestamp: committed[0]!.timestamp,
    });
    // the part before is the event's own timeline; the rest reaches 10 s after
    expect(e.timeline.slice(0, committed[0]!.timeline!.length)).toEqual(committed[0]!.timeline);
    expect(e.timeline.at(-1)!.t).toBeGreaterThan(9.4);
    expect(e.timeline.at(-1)!.t).toBeLessThanOrEqual(10);
    for (let i = 1; i < e.timeline.length; i++)
      expect(e.timeline[i]!.t - e.timeline[i - 1]!.t).toBeCloseTo(0.512, 3);

    // a stop before the 10 s after: what there is goes out, nothing waits for audio that never comes
    const short = await screamSequenceWav(dir.dir, 'evidence-short', 1, { gapS: 3, screamS: 2 });
    const { samples: s2 } = await decodeAudioFile(short.path);
    const q2 = new FrameQueue(16000 * 60);
    const ev2: EvidenceMessage[] = [];
    const s2service = new DetectionService({
      model,
      detection: daemonConfig({ stateDir: dir.dir }).detection,
      sensorId: 'hall-1',
      audioSource: 'file:test',
      deviceInfo: deviceInfo(),
      location: undefined,
      queue: q2,
      sink: { commit: () => {}, evidence: (m) => void ev2.push(m) },
      clock: { now: () => 1_700_000_000_000 },
      logger: captureLogs().logger,
    });
    await s2service.start();
    for (let at = 0; at < s2.length; at += 4000) q2.push(s2.slice(at, at + 4000));
    await s2service.stop();
    expect(ev2).toHaveLength(1);
    expect(ev2[0]!.timeline.at(-1)!.t).toBeGreaterThan(0);
    expect(ev2[0]!.timeline.at(-1)!.t).toBeLessThan(6);
    await service.stop();
  });
});
