import { fileURLToPath } from 'node:url';

/** Folder holding the fake `arecord`; put it first on PATH. */
export const FAKE_ARECORD_DIR = fileURLToPath(new URL('./fake-arecord', import.meta.url));

export interface FakeArecordSetup {
  /** The WAV the fake microphone "hears" (then silence). */
  wav?: string;
  /** ALSA device names that fail like an absent card. */
  missingDevices?: string[];
  /** One JSON line per start of the fake arecord. */
  logFile?: string;
  speed?: number;
  /** Opens, then delivers no bytes at all. */
  stall?: boolean;
}

/**
 * Points this process's environment at the fake arecord (node-record-lpcm16 spawns
 * `arecord` from PATH with the inherited environment). Returns a function that restores it.
 */
export function useFakeArecord(setup: FakeArecordSetup): () => void {
  const saved = {
    PATH: process.env.PATH,
    FAKE_ARECORD_WAV: process.env.FAKE_ARECORD_WAV,
    FAKE_ARECORD_MISSING: process.env.FAKE_ARECORD_MISSING,
    FAKE_ARECORD_LOG: process.env.FAKE_ARECORD_LOG,
    FAKE_ARECORD_SPEED: process.env.FAKE_ARECORD_SPEED,
    FAKE_ARECORD_STALL: process.env.FAKE_ARECORD_STALL,
  };
  process.env.PATH = `${FAKE_ARECORD_DIR}:${process.env.PATH ?? ''}`;
  const set = (k: string, v: string | undefined) => {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  };
  set('FAKE_ARECORD_WAV', setup.wav);
  set('FAKE_ARECORD_MISSING', setup.missingDevices?.join(';'));
  set('FAKE_ARECORD_LOG', setup.logFile);
  set('FAKE_ARECORD_STALL', setup.stall ? '1' : undefined);
  set('FAKE_ARECORD_SPEED', setup.speed === undefined ? undefined : String(setup.speed));
  return () => {
    for (const [k, v] of Object.entries(saved)) set(k, v);
  };
}
