import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { DaemonError } from '../errors.ts';
import { type DaemonConfig, DaemonConfigSchema } from './schema.ts';

export const ENV_PREFIX = 'SCREAMWATCH_';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
type LeafKind = 'string' | 'number' | 'boolean' | 'enum';

export interface EnvKey {
  /** e.g. ['mqtt', 'url'] */
  path: string[];
  /** e.g. SCREAMWATCH_MQTT_URL */
  name: string;
  kind: LeafKind;
  nullable: boolean;
}

export interface LoadConfigOptions {
  /** YAML or JSON file (YAML is a superset of JSON, so one parser reads both). */
  file?: string | undefined;
  /** Defaults to process.env; only SCREAMWATCH_* names derived from the schema are read. */
  env?: NodeJS.ProcessEnv;
  /** Highest precedence: CLI flags, as a partial config (`{ audio: { source } }`). */
  overrides?: JsonObject;
}

/**
 * Defaults < file < SCREAMWATCH_* environment < flags, validated once. A failure throws
 * CONFIG_INVALID naming every bad key path and where its value came from.
 */
export function loadDaemonConfig(options: LoadConfigOptions = {}): DaemonConfig {
  const sources = new Map<string, string>();
  let merged: JsonObject = {};
  if (options.file) {
    const fromFile = readConfigFile(options.file);
    merged = deepMerge(merged, fromFile);
    for (const p of leafPaths(fromFile)) sources.set(p, `file ${options.file}`);
  }
  const env = options.env ?? process.env;
  for (const key of envKeys()) {
    const raw = env[key.name];
    if (raw === undefined || raw === '') continue;
    merged = deepMerge(merged, nest(key.path, parseEnvValue(key, raw)));
    sources.set(key.path.join('.'), `environment ${key.name}`);
  }
  if (options.overrides) {
    merged = deepMerge(merged, options.overrides);
    for (const p of leafPaths(options.overrides)) sources.set(p, 'command line');
  }
  const parsed = DaemonConfigSchema.safeParse(merged);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(root)';
    const from = sources.get(path);
    const unknown =
      issue.code === 'unrecognized_keys'
        ? ` (${issue.keys.map((k) => (path === '(root)' ? k : `${path}.${k}`)).join(', ')})`
        : '';
    return `${path}: ${issue.message}${unknown}${from ? ` [from ${from}]` : ''}`;
  });
  throw new DaemonError('CONFIG_INVALID', `invalid daemon config: ${problems.join('; ')}`, {
    problems,
    file: options.file,
  });
}

export function readConfigFile(file: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DaemonError(
      'CONFIG_READ_FAILED',
      `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { file },
      { cause: err },
    );
  }
  let value: unknown;
  try {
    value = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new DaemonError(
      'CONFIG_PARSE_FAILED',
      `config file ${file} is not valid YAML/JSON: ${(err as Error).message}`,
      {
        file,
      },
    );
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new DaemonError(
      'CONFIG_PARSE_FAILED',
      `config file ${file} must hold a mapping of keys, not ${typeof value}`,
      {
        file,
      },
    );
  }
  return value as JsonObject;
}

/** Every SCREAMWATCH_* variable the schema allows, derived from its leaves. */
export function envKeys(): EnvKey[] {
  const out: EnvKey[] = [];
  walk(DaemonConfigSchema, [], out);
  return out;
}

function walk(schema: z.ZodType, path: string[], out: EnvKey[]): void {
  let node = schema as unknown as ZodNode;
  let nullable = false;
  for (;;) {
    const t = node._zod.def.type;
    if (t === 'default' || t === 'optional' || t === 'pipe' || t === 'nullable') {
      if (t === 'nullable') nullable = true;
      node = (node._zod.def.innerType ?? node._zod.def.in) as ZodNode;
      continue;
    }
    break;
  }
  const type = node._zod.def.type;
  if (type === 'object') {
    for (const [key, child] of Object.entries(node._zod.def.shape ?? {}))
      walk(child as z.ZodType, [...path, key], out);
    return;
  }
  const kind: LeafKind | null =
    type === 'string'
      ? 'string'
      : type === 'number'
        ? 'number'
        : type === 'boolean'
          ? 'boolean'
          : type === 'enum'
            ? 'enum'
            : null;
  if (!kind) return;
  out.push({ path, name: ENV_PREFIX + path.map(toUpperSnake).join('_'), kind, nullable });
}

interface ZodNode {
  _zod: { def: { type: string; innerType?: unknown; in?: unknown; shape?: Record<string, unknown> } };
}

function toUpperSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Environment values are strings; the schema says what each should become. */
function parseEnvValue(key: EnvKey, raw: string): Json {
  if (key.nullable && raw === 'null') return null;
  if (key.kind === 'number') {
    const n = Number(raw);
    return Number.isFinite(n) && raw.trim() !== '' ? n : raw;
  }
  if (key.kind === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(raw)) return true;
    if (/^(false|0|no|off)$/i.test(raw)) return false;
    return raw;
  }
  return raw;
}

function nest(path: string[], value: Json): JsonObject {
  let out: Json = value;
  for (let i = path.length - 1; i >= 0; i--) out = { [path[i]!]: out };
  return out as JsonObject;
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: JsonObject, over: JsonObject): JsonObject {
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] = isObject(prev) && isObject(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

function leafPaths(o: JsonObject, prefix = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (isObject(v)) out.push(...leafPaths(v, p));
    else out.push(p);
  }
  return out;
}
