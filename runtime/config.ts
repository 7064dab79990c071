import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import type { ScreamwatchError } from '../protocol/errors.ts';

/**
 * The one config loader of the daemon and the bridge (zigbee2mqtt's settings schema and
 * fastify's config validator are the models): defaults < file < SCREAMWATCH_* environment <
 * command line, validated once against the side's zod schema. The environment variables are
 * derived from the schema and each value is typed by it (a numeric password stays a string).
 * Every problem names the key path and where the value came from; keys the schema does not
 * know are refused with a did-you-mean (a typo such as `alerts.polices:` must stop the bridge,
 * not start one that never alerts anyone).
 */

export const ENV_PREFIX = 'SCREAMWATCH_';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };
type LeafKind = 'string' | 'number' | 'boolean' | 'enum' | 'json';

export interface EnvKey {
  /** e.g. ['mqtt', 'url'] */
  path: string[];
  /** e.g. SCREAMWATCH_MQTT_URL */
  name: string;
  /** How the string is read: numbers and booleans parsed, arrays as JSON, the rest as is. */
  kind: LeafKind;
  nullable: boolean;
}

/** The side's error codes and error class. */
export interface ConfigErrors {
  /** The file cannot be read. */
  read: string;
  /** The file is not YAML/JSON or not a mapping. */
  parse: string;
  /** A value or key the schema refuses. */
  invalid: string;
  make(code: string, message: string, context: Record<string, unknown>): ScreamwatchError;
}

export interface ConfigSpec<S extends z.ZodType> {
  schema: S;
  /** In messages: "invalid daemon config: …". */
  name: string;
  errors: ConfigErrors;
  /** Checks zod cannot express on one value (duplicate ids): problems as `path: reason`. */
  check?: (config: z.infer<S>) => string[];
}

export interface LoadConfigOptions {
  /** YAML or JSON file (YAML is a superset of JSON, so one parser reads both). */
  file?: string | null | undefined;
  /** Defaults to process.env; only SCREAMWATCH_* names derived from the schema are read. */
  env?: NodeJS.ProcessEnv;
  /** Highest precedence: CLI flags, as a partial config (`{ audio: { source } }`). */
  overrides?: JsonObject;
  /** Instead of a file: a config object from code (the demo, tests), named in messages by this. */
  object?: { value: unknown; source: string };
}

export function loadConfig<S extends z.ZodType>(
  spec: ConfigSpec<S>,
  options: LoadConfigOptions = {},
): z.infer<S> {
  const sources = new Map<string, string>();
  let merged: JsonObject = {};
  const add = (layer: JsonObject, source: string) => {
    merged = deepMerge(merged, layer);
    for (const p of leafPaths(layer)) sources.set(p, source);
  };
  if (options.object) {
    const { value, source } = options.object;
    if (!isObject(value as Json))
      throw spec.errors.make(spec.errors.parse, `${source}: must be a mapping of config keys`, { source });
    add(value as JsonObject, source);
  }
  if (options.file) add(readConfigFile(options.file, spec.errors), `file ${options.file}`);
  const env = options.env ?? process.env;
  for (const key of envKeys(spec.schema)) {
    const raw = env[key.name];
    if (raw === undefined || raw === '') continue;
    add(nest(key.path, parseEnvValue(key, raw)), `environment ${key.name}`);
  }
  if (options.overrides) add(options.overrides, 'command line');

  const fail = (problems: string[]): never => {
    const where = options.file ? ` (${options.file})` : '';
    throw spec.errors.make(spec.errors.invalid, `invalid ${spec.name}${where}: ${problems.join('; ')}`, {
      problems,
      file: options.file ?? null,
    });
  };
  const from = (path: string) => {
    const source = sources.get(path);
    return source ? ` [from ${source}]` : '';
  };
  const unknown = unknownKeys(spec.schema, merged, []).map(
    (u) => `${u.path}: unknown key${u.suggestion ? ` (did you mean ${u.suggestion}?)` : ''}${from(u.path)}`,
  );
  const parsed = spec.schema.safeParse(merged);
  // unknown keys and bad values together, so one round of fixes is enough
  const invalid = parsed.success
    ? []
    : parsed.error.issues
        .filter((issue) => !(issue.code === 'unrecognized_keys' && unknown.length))
        .map((issue) => {
          const path = issue.path.map(String).join('.') || '(root)';
          const keys =
            issue.code === 'unrecognized_keys'
              ? ` (${issue.keys.map((k) => (path === '(root)' ? k : `${path}.${k}`)).join(', ')})`
              : '';
          return `${path}: ${issue.message}${keys}${from(path)}`;
        });
  if (unknown.length || !parsed.success) fail([...unknown, ...invalid]);
  const config = (parsed as { data: z.infer<S> }).data;
  const problems = spec.check?.(config) ?? [];
  if (problems.length) fail(problems.map((p) => `${p}${from(p.slice(0, p.indexOf(':')))}`));
  return config;
}

/** Reads a YAML or JSON config file into a mapping; the errors name the file. */
export function readConfigFile(file: string, errors: ConfigErrors): JsonObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw errors.make(
      errors.read,
      `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { file },
    );
  }
  let value: unknown;
  try {
    value = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw errors.make(errors.parse, `config file ${file} is not valid YAML/JSON: ${(err as Error).message}`, {
      file,
    });
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw errors.make(
      errors.parse,
      `config file ${file} must hold a mapping of keys, not ${Array.isArray(value) ? 'a list' : typeof value}`,
      { file },
    );
  }
  return value as JsonObject;
}

interface ZodNode {
  _zod: {
    def: {
      type: string;
      innerType?: unknown;
      in?: unknown;
      shape?: Record<string, unknown>;
      element?: unknown;
      catchall?: { _zod: { def: { type: string } } };
    };
  };
}

/** Unwraps default/optional/nullable/prefault/pipe wrappers down to the value's schema. */
function unwrap(schema: unknown): { node: ZodNode; nullable: boolean } {
  let node = schema as ZodNode;
  let nullable = false;
  for (;;) {
    const def = node._zod.def;
    const t = def.type;
    if (t === 'nullable') nullable = true;
    if (t === 'default' || t === 'prefault' || t === 'optional' || t === 'nullable' || t === 'readonly') {
      node = def.innerType as ZodNode;
    } else if (t === 'pipe') {
      node = def.in as ZodNode;
    } else {
      return { node, nullable };
    }
  }
}

/** Every SCREAMWATCH_* variable the schema allows, derived from its leaves. */
export function envKeys(schema: z.ZodType): EnvKey[] {
  const out: EnvKey[] = [];
  walkEnv(schema, [], out);
  return out;
}

function walkEnv(schema: unknown, path: string[], out: EnvKey[]): void {
  const { node, nullable } = unwrap(schema);
  const type = node._zod.def.type;
  if (type === 'object') {
    for (const [key, child] of Object.entries(node._zod.def.shape ?? {})) walkEnv(child, [...path, key], out);
    return;
  }
  const kind: LeafKind | null =
    type === 'string' || type === 'literal'
      ? 'string'
      : type === 'number'
        ? 'number'
        : type === 'boolean'
          ? 'boolean'
          : type === 'enum'
            ? 'enum'
            : type === 'array'
              ? 'json'
              : null;
  if (!kind || path.length === 0) return;
  out.push({ path, name: ENV_PREFIX + path.map(toUpperSnake).join('_'), kind, nullable });
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
  if (key.kind === 'json') {
    try {
      return JSON.parse(raw) as Json;
    } catch {
      return raw; // the schema then says "expected array", naming the variable
    }
  }
  return raw;
}

interface UnknownKey {
  path: string;
  suggestion: string | null;
}

/** Keys in `value` that the schema's objects do not declare (arrays are walked element by element). */
function unknownKeys(schema: unknown, value: Json | undefined, path: string[]): UnknownKey[] {
  const { node } = unwrap(schema);
  const def = node._zod.def;
  if (def.type === 'object' && isObject(value)) {
    const catchall = def.catchall?._zod.def.type;
    if (catchall && catchall !== 'never') return []; // a loose object takes any key
    const shape = def.shape ?? {};
    const out: UnknownKey[] = [];
    for (const [key, child] of Object.entries(value)) {
      const here = [...path, key];
      if (Object.hasOwn(shape, key)) out.push(...unknownKeys(shape[key], child, here));
      else {
        const near = closest(key, Object.keys(shape));
        out.push({ path: here.join('.'), suggestion: near === null ? null : [...path, near].join('.') });
      }
    }
    return out;
  }
  if (def.type === 'array' && Array.isArray(value)) {
    return value.flatMap((item, i) => unknownKeys(def.element, item, [...path, String(i)]));
  }
  return [];
}

/** The known key nearest to a typo, if it is near enough to be what was meant. */
export function closest(key: string, known: string[]): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  const k = key.toLowerCase();
  for (const candidate of known) {
    const d = candidate.toLowerCase() === k ? 0 : editDistance(k, candidate.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = candidate;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
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
    else if (Array.isArray(v)) {
      out.push(p);
      // elements too, so `sensors.1.id: ...` names its source
      v.forEach((item, i) => {
        if (isObject(item)) out.push(...leafPaths(item, `${p}.${i}`));
        else out.push(`${p}.${i}`);
      });
    } else out.push(p);
  }
  return out;
}
