import { describe, expect, it } from 'vitest';
import { lowPass } from '../../core/train/augment.ts';
import type { Clip } from '../../core/train/dataset.ts';
import { familyOf } from '../../core/train/families.ts';
import { folderShortcutItems, shortcutCheck, shortcutFeatures } from '../../core/train/pipeline.ts';
import { seededRandom } from '../../core/train/random.ts';

/** A harmonic tone with noise: the same kind of sound in both classes. */
function tone(random: () => number, gain: number): Float32Array {
  const f0 = 300 + 600 * random();
  return Float32Array.from({ length: 8000 }, (_, i) => {
    let v = 0;
    for (let h = 1; h <= 8; h++) v += Math.sin((2 * Math.PI * f0 * h * i) / 16000) / h;
    return gain * (0.3 * v + 0.05 * (random() * 2 - 1));
  });
}

function folder(shortcut: boolean): Clip[] {
  const random = seededRandom(11);
  const clips: Clip[] = [];
  for (const source of ['a', 'b', 'c', 'd']) {
    for (let i = 0; i < 12; i++) {
      for (const label of [0, 1] as const) {
        let samples = tone(random, shortcut && label === 1 ? 0.9 : 0.05 + 0.85 * random());
        // the shortcut: every non-scream recorded through an 8 kHz chain
        if (shortcut ? label === 0 : random() < 0.5) samples = lowPass(samples, 3800);
        clips.push({
          file: `${source}/${label}-${i}.wav`,
          label,
          source,
          recording: `${source}:${label}-${i}`,
          license: 'test',
          samples,
          durationS: 0.5,
        });
      }
    }
  }
  return clips;
}

describe('the bandwidth/level shortcut check', () => {
  it('fires on a folder whose non-screams are all band-limited and whose screams are louder', () => {
    const r = shortcutCheck(folderShortcutItems(folder(true), 'source'));
    expect(r.rocAuc).toBeGreaterThan(0.95);
    expect(r.bandwidthOnlyRocAuc).toBeGreaterThan(0.95);
    expect(r.levelOnlyRocAuc).toBeGreaterThan(0.8);
  });

  it('stays near chance when bandwidth and level do not depend on the class', () => {
    const r = shortcutCheck(folderShortcutItems(folder(false), 'source'));
    expect(r.rocAuc).toBeLessThan(0.7);
    expect(r.rocAuc).toBeGreaterThan(0.3);
  });

  it('measures bandwidth: a low-passed clip has far less energy share above 4.5 kHz', () => {
    const x = tone(seededRandom(2), 0.5);
    const full = shortcutFeatures(x);
    const limited = shortcutFeatures(lowPass(x, 3800));
    expect(limited[1]! - full[1]!).toBeLessThan(-20);
  });

  it('groups the Debian game packages into families and leaves unknown sources alone', () => {
    expect(familyOf('debian:openarena-data')).toBe(familyOf('debian:nexuiz-data'));
    expect(familyOf('gveres/donateacry-corpus')).toBe(
      familyOf('saha0073/baby-cry-detection-from-music-and-noise'),
    );
    expect(familyOf('someone/new-corpus')).toBe('someone/new-corpus');
  });
});
