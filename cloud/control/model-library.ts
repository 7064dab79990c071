import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { FEATURE_SET } from '../../core/features/window-features.ts';
import { DEFAULT_MODEL_PATH } from '../../core/model/load.ts';
import { ScreamModel } from '../../core/model/scream-model.ts';
import { ScreamwatchError } from '../../protocol/errors.ts';
import type { ModelRef } from '../../protocol/messages.ts';
import { readJsonFile, writeFileAtomic, writeJsonFileAtomic } from '../../runtime/json-file.ts';
import { CloudError } from '../errors.ts';

/** One model file the bridge can hand to sensors. */
export interface ModelEntry {
  sha256: string;
  version: string;
  size: number;
  featureSet: string;
  /** `shipped`: the bridge's own model (modelPath or models/); `uploaded`: by an admin. */
  source: 'shipped' | 'uploaded';
  uploadedAt: string | null;
  uploadedBy: string | null;
}

export interface ModelLibraryOptions {
  dataDir: string;
  /** The bridge's own model (config modelPath); null: models/screamwatch-forest.json. */
  shippedPath: string | null;
  maxUploadBytes: number;
  /** config models.urlSecret; null: generated once in `<dataDir>/models/url-secret`. */
  urlSecret: string | null;
  urlTtlS: number;
  clock: () => Date;
  logger: Logger;
}

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * The model files the bridge knows: its shipped model and the ones admins uploaded (kept as
 * `<dataDir>/models/<sha256>.json`, listed in `index.json`). An upload is kept only if it
 * loads as a model of this feature set. Sensors fetch them through a link signed with an HMAC
 * of sha256 and expiry (`/model-files/<sha256>?exp=..&sig=..`): no dashboard account on the
 * sensor, and a leaked link stops working after models.urlTtlS.
 */
export class ModelLibrary {
  readonly dir: string;
  private readonly entries = new Map<string, ModelEntry & { file: string }>();
  private secret: Buffer = Buffer.alloc(0);

  constructor(private readonly options: ModelLibraryOptions) {
    this.dir = join(resolve(options.dataDir), 'models');
  }

  start(): void {
    mkdirSync(this.dir, { recursive: true });
    this.secret = this.options.urlSecret
      ? Buffer.from(this.options.urlSecret, 'utf8')
      : this.generatedSecret(join(this.dir, 'url-secret'));
    const shipped = this.options.shippedPath ?? DEFAULT_MODEL_PATH;
    try {
      const bytes = readFileSync(shipped);
      const model = ScreamModel.fromJSON(JSON.parse(bytes.toString('utf8')), shipped);
      this.add(bytes, model, shipped, { source: 'shipped', uploadedAt: null, uploadedBy: null });
    } catch (err) {
      this.options.logger.error(
        { code: 'MODEL_INVALID', file: shipped, err: (err as Error).message },
        'the bridge model cannot be offered for rollout',
      );
    }
    const index = this.readIndex();
    for (const e of index) {
      const file = join(this.dir, `${e.sha256}.json`);
      if (!SHA256.test(e.sha256) || !existsSync(file)) continue;
      if (!this.entries.has(e.sha256)) this.entries.set(e.sha256, { ...e, source: 'uploaded', file });
    }
  }

  private generatedSecret(file: string): Buffer {
    if (existsSync(file)) {
      const s = readFileSync(file);
      if (s.length >= 32) return s;
    }
    const s = randomBytes(32);
    writeFileAtomic(file, s, 0o600);
    return s;
  }

  private readIndex(): ModelEntry[] {
    try {
      const raw = readJsonFile(join(this.dir, 'index.json'));
      return Array.isArray(raw) ? (raw as ModelEntry[]) : [];
    } catch (err) {
      this.options.logger.error(
        { code: 'CLOUD_STORE_WRITE_FAILED', err: (err as Error).message },
        'the model index is unreadable; uploaded models are not listed until uploaded again',
      );
      return [];
    }
  }

  private add(
    bytes: Buffer,
    model: ScreamModel,
    file: string,
    meta: Pick<ModelEntry, 'source' | 'uploadedAt' | 'uploadedBy'>,
  ): ModelEntry {
    const entry = {
      sha256: createHash('sha256').update(bytes).digest('hex'),
      version: model.version,
      size: bytes.byteLength,
      featureSet: model.meta.featureSet,
      ...meta,
      file,
    };
    this.entries.set(entry.sha256, entry);
    return strip(entry);
  }

  /** Newest upload first, the shipped model last. */
  list(): ModelEntry[] {
    return [...this.entries.values()]
      .map(strip)
      .sort((a, b) => (b.uploadedAt ?? '').localeCompare(a.uploadedAt ?? ''));
  }

  get(sha256: string): ModelEntry | undefined {
    const e = this.entries.get(sha256);
    return e && strip(e);
  }

  /**
   * An admin's upload: kept when it loads as a model for this feature set and is not too large.
   * Throws MODEL_UPLOAD_INVALID (422) naming the problem, nothing stored then.
   */
  upload(bytes: Buffer, username: string): { entry: ModelEntry; created: boolean } {
    if (bytes.byteLength > this.options.maxUploadBytes)
      throw new CloudError('MODEL_UPLOAD_INVALID', `larger than models.maxUploadBytes`, {
        problem: 'too large',
      });
    let model: ScreamModel;
    try {
      model = ScreamModel.fromJSON(JSON.parse(bytes.toString('utf8')), 'the upload');
    } catch (err) {
      const cause = err instanceof ScreamwatchError ? err.code : 'MODEL_INVALID';
      throw new CloudError(
        'MODEL_UPLOAD_INVALID',
        `${cause}: ${(err as Error).message.replace(/^the upload: /, '')}`,
        { problem: cause },
      );
    }
    if (model.meta.featureSet !== FEATURE_SET)
      throw new CloudError(
        'MODEL_UPLOAD_INVALID',
        `MODEL_FEATURES_MISMATCH: trained on ${model.meta.featureSet}`,
      );
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const known = this.entries.get(sha256);
    if (known) return { entry: strip(known), created: false };
    const clash = [...this.entries.values()].find((e) => e.version === model.version);
    if (clash)
      throw new CloudError(
        'MODEL_UPLOAD_INVALID',
        `another file is already model ${model.version} (${clash.sha256.slice(0, 12)}); give the new one its own version`,
      );
    const file = join(this.dir, `${sha256}.json`);
    writeFileAtomic(file, bytes);
    const entry = this.add(bytes, model, file, {
      source: 'uploaded',
      uploadedAt: this.options.clock().toISOString(),
      uploadedBy: username.slice(0, 100),
    });
    writeJsonFileAtomic(
      join(this.dir, 'index.json'),
      this.list().filter((e) => e.source === 'uploaded'),
    );
    this.options.logger.info({ ...entry }, `model ${entry.version} uploaded by ${username}`);
    return { entry, created: true };
  }

  private sign(sha256: string, exp: number): string {
    return createHmac('sha256', this.secret).update(`${sha256}.${exp}`).digest('base64url');
  }

  /** What a set-model command carries: a link on `baseUrl` valid for models.urlTtlS. */
  ref(sha256: string, baseUrl: string): ModelRef {
    const e = this.entries.get(sha256);
    if (!e) throw new CloudError('MODEL_UNKNOWN', `no model ${sha256} on this bridge`, { sha256 });
    const exp = Math.floor(this.options.clock().getTime() / 1000) + this.options.urlTtlS;
    const url = `${baseUrl.replace(/\/+$/, '')}/model-files/${sha256}?exp=${exp}&sig=${this.sign(sha256, exp)}`;
    return { url, sha256, size: e.size, featureSet: e.featureSet, version: e.version };
  }

  /**
   * The file behind a download link: MODEL_URL_INVALID (403) for a link without a valid,
   * unexpired signature (checked first: it says nothing about which models exist), MODEL_UNKNOWN (404).
   */
  open(
    sha256: string,
    exp: string | undefined,
    sig: string | undefined,
  ): { file: string; entry: ModelEntry } {
    const expS = Number(exp);
    const nowS = this.options.clock().getTime() / 1000;
    const fail = (why: string) => new CloudError('MODEL_URL_INVALID', `model download refused: ${why}`);
    if (!SHA256.test(sha256) || !sig || !Number.isInteger(expS)) throw fail('no signature');
    if (expS < nowS) throw fail('the link has expired');
    const want = Buffer.from(this.sign(sha256, expS));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) throw fail('wrong signature');
    const e = this.entries.get(sha256);
    if (!e) throw new CloudError('MODEL_UNKNOWN', `no model ${sha256} on this bridge`, { sha256 });
    return { file: e.file, entry: strip(e) };
  }
}

function strip(e: ModelEntry & { file?: string }): ModelEntry {
  const { file: _file, ...rest } = e;
  return rest;
}
