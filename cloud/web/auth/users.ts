import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { hashPassword, isPasswordHash } from '../../auth/passwords.ts';
import { WebError } from '../errors.ts';
import type { WebUser } from '../types.ts';

export const FIRST_RUN_ADMIN_FILE = 'web-admin.json';
export const SESSION_SECRET_FILE = 'web-session-secret';
/** The first-run admin's password in clear, for the operator to read once (mode 0600). */
export const FIRST_RUN_PASSWORD_FILE = 'web-admin-password';

/**
 * The users who may log in. With none configured, a first-run `admin` is created: its hash
 * is kept in dataDir and its password written beside it in a 0600 file that the log names
 * (never the password itself: logs are shipped and kept), so a fresh install is usable
 * without putting a password in a config file.
 */
export async function resolveUsers(
  configured: WebUser[],
  dataDir: string,
  logger: Logger,
): Promise<WebUser[]> {
  configured.forEach((u, i) => {
    if (!isPasswordHash(u.passwordHash)) {
      throw new WebError(
        'WEB_BAD_REQUEST',
        `web.users[${i}].passwordHash (${u.username}) is not an scrypt hash; make one with \`screamwatch cloud hash-password\``,
      );
    }
  });
  if (configured.length > 0) return configured;
  const file = join(dataDir, FIRST_RUN_ADMIN_FILE);
  try {
    const stored = JSON.parse(await readFile(file, 'utf8')) as WebUser;
    if (stored && isPasswordHash(stored.passwordHash)) return [{ ...stored, role: 'admin' }];
    throw new WebError(
      'WEB_DATA_DIR',
      `${file}: not a first-run admin record; delete it to create a new admin`,
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof WebError) throw err;
      throw new WebError(
        'WEB_DATA_DIR',
        `${file}: cannot read (${(err as Error).message})`,
        { file },
        { cause: err },
      );
    }
  }
  const password = randomBytes(12).toString('base64url');
  const user: WebUser = { username: 'admin', passwordHash: await hashPassword(password), role: 'admin' };
  await ensureDir(dataDir);
  await writeFile(file, `${JSON.stringify(user, null, 2)}\n`, { mode: 0o600 });
  const passwordFile = join(dataDir, FIRST_RUN_PASSWORD_FILE);
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  logger.warn(
    { username: user.username, passwordFile, file },
    'web: no users configured; created first-run admin: its password is in passwordFile (read it, then delete the file; add web.users to the config to replace this admin)',
  );
  return [user];
}

export async function resolveSessionSecret(configured: string | null, dataDir: string): Promise<string> {
  if (configured) return configured;
  const file = join(dataDir, SESSION_SECRET_FILE);
  try {
    const s = (await readFile(file, 'utf8')).trim();
    if (s.length >= 32) return s;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new WebError(
        'WEB_DATA_DIR',
        `${file}: cannot read (${(err as Error).message})`,
        { file },
        { cause: err },
      );
    }
  }
  const secret = randomBytes(32).toString('base64url');
  await ensureDir(dataDir);
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new WebError(
      'WEB_DATA_DIR',
      `web.dataDir ${dir}: cannot create (${(err as Error).message})`,
      { dir },
      { cause: err },
    );
  }
}
