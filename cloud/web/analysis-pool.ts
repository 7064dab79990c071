import { Worker } from 'node:worker_threads';
import type { AnalysisResult } from '../../core/detect/analyze.ts';
import { ScreamwatchError } from '../../protocol/errors.ts';
import { bundleWorkerScript } from '../../runtime/esbuild-service.ts';
import { WebError } from './errors.ts';

/** What the pool has done since start (metrics). */
export interface AnalysisStats {
  /** Slots held now: uploads being read or analysed. */
  busy: number;
  capacity: number;
  /** Uploads refused with 429 because every slot was held. */
  refused: number;
  analysed: number;
  failed: number;
}

export interface AnalysisOutput {
  originalSampleRate: number;
  result: AnalysisResult;
}

interface Pending {
  resolve(out: AnalysisOutput): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

type WorkerReply =
  | { id: number; ok: true; originalSampleRate: number; result: AnalysisResult }
  | { id: number; ok: false; error: { code: string; message: string; coded: boolean } };

/** Uploads waiting or running at once; more get a 429 rather than an ever-growing queue. */
const MAX_JOBS = 4;
/** A 20 MB WAV decodes and scores in ~15 s on a small VM; far beyond that, something is stuck. */
const JOB_TIMEOUT_MS = 180_000;

/**
 * Decodes and scores uploads in one worker thread. Resampling a long file takes seconds of
 * CPU, and the dashboard shares its event loop with MQTT ingest and alert delivery, which
 * must not stall while someone analyses a recording. The worker is the shared core bundled
 * with esbuild at start (no build step, and it runs the same under tsx and under vitest).
 */
export class AnalysisPool {
  private code: string | null = null;
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Uploads holding a slot: from before their body is read until their analysis ends. */
  private reserved = 0;
  private readonly counts = { refused: 0, analysed: 0, failed: 0 };

  constructor(
    private readonly modelJson: string,
    /** web.maxAnalysisSeconds: longer audio is refused (413) before it is decoded. */
    private readonly maxSeconds = 600,
  ) {}

  /**
   * Takes a slot for one upload before its body is read, or null when all are taken. Reading
   * the bodies counts against the slots too (twenty 19 MB uploads read at once stalled the
   * bridge before any reached the worker), so at most MAX_JOBS bodies are in memory.
   * The returned release is idempotent; call it when the upload is done, however it ends.
   */
  reserve(): (() => void) | null {
    if (this.reserved >= MAX_JOBS) {
      this.counts.refused++;
      return null;
    }
    this.reserved++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.reserved--;
    };
  }

  stats(): AnalysisStats {
    return { busy: this.reserved, capacity: MAX_JOBS, ...this.counts };
  }

  async start(): Promise<void> {
    try {
      this.code = await bundleWorkerScript(new URL('./analysis-worker.ts', import.meta.url));
    } catch (err) {
      throw new WebError(
        'WEB_BUNDLE_FAILED',
        `web: bundling the analysis worker failed: ${(err as Error).message}`,
        undefined,
        {
          cause: err,
        },
      );
    }
  }

  async stop(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    this.failAll(new WebError('WEB_UNAVAILABLE', 'the dashboard is shutting down; analysis cancelled'));
    if (w) await w.terminate();
  }

  /**
   * `owned`: the caller gives up `bytes.buffer` (readUpload's buffer), which is transferred to
   * the worker and detached here, whatever part of it `bytes` views. Otherwise the bytes are
   * copied unless they view their whole buffer (a Buffer may share Node's pool with others).
   */
  analyse(bytes: Uint8Array, name: string, threshold?: number, owned = false): Promise<AnalysisOutput> {
    if (!this.code) return Promise.reject(new WebError('WEB_UNAVAILABLE', 'analysis worker is not started'));
    if (this.pending.size >= MAX_JOBS) {
      return Promise.reject(
        new WebError(
          'WEB_RATE_LIMITED',
          `the server is analysing ${this.pending.size} files; try again in a minute`,
        ),
      );
    }
    const worker = this.ensureWorker();
    const id = this.nextId++;
    // transferred to the worker, not copied, when the buffer is the upload's alone; else one
    // private copy (a 19 MB copy here holds the event loop)
    const own = owned || (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength);
    const copy: Uint8Array<ArrayBuffer> =
      own && bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
    return new Promise<AnalysisOutput>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new WebError(
            'WEB_ANALYSIS_FAILED',
            `${name}: analysis took longer than ${JOB_TIMEOUT_MS / 1000} s`,
          ),
        );
        // the worker may be wedged on this file: replace it
        void this.restart();
      }, JOB_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      worker.postMessage({ id, bytes: copy, name, threshold, maxSeconds: this.maxSeconds }, [copy.buffer]);
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.code!, {
      eval: true,
      workerData: { modelJson: this.modelJson },
      // a cap on the worker's JS heap; the sample buffers are bounded by maxSeconds
      resourceLimits: { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 64 },
    });
    w.on('message', (m: WorkerReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) this.counts.analysed++;
      else this.counts.failed++;
      if (m.ok) p.resolve({ originalSampleRate: m.originalSampleRate, result: m.result });
      else if (m.error.coded) p.reject(new ScreamwatchError(m.error.code, m.error.message));
      else p.reject(new Error(m.error.message));
    });
    w.on('error', (err) => {
      if (this.worker === w) this.worker = null;
      this.failAll(new WebError('WEB_ANALYSIS_FAILED', `analysis worker failed: ${err.message}`));
    });
    w.on('exit', () => {
      if (this.worker === w) this.worker = null;
    });
    this.worker = w;
    return w;
  }

  private async restart(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    this.failAll(new WebError('WEB_ANALYSIS_FAILED', 'analysis worker restarted; try again'));
    if (w) await w.terminate();
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}
