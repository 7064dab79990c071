import {
  type ConfigErrors,
  type ConfigSpec,
  type EnvKey,
  type LoadConfigOptions,
  loadConfig,
  envKeys as schemaEnvKeys,
} from '../../runtime/config.ts';
import { DaemonError, type DaemonErrorCode } from '../errors.ts';
import { type DaemonConfig, DaemonConfigSchema } from './schema.ts';

export { ENV_PREFIX, type EnvKey } from '../../runtime/config.ts';

const errors: ConfigErrors = {
  read: 'CONFIG_READ_FAILED',
  parse: 'CONFIG_PARSE_FAILED',
  invalid: 'CONFIG_INVALID',
  make: (code, message, context) => new DaemonError(code as DaemonErrorCode, message, context),
};

const spec: ConfigSpec<typeof DaemonConfigSchema> = {
  schema: DaemonConfigSchema,
  name: 'daemon config',
  errors,
};

/**
 * Defaults < file < SCREAMWATCH_* environment < flags, validated once (runtime/config.ts). A
 * failure throws CONFIG_INVALID naming every bad or unknown key path and where its value came from.
 */
export function loadDaemonConfig(options: Omit<LoadConfigOptions, 'object'> = {}): DaemonConfig {
  return loadConfig(spec, options);
}

/** Every SCREAMWATCH_* variable the daemon's schema allows. */
export function envKeys(): EnvKey[] {
  return schemaEnvKeys(DaemonConfigSchema);
}
