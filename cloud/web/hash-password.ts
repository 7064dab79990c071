// Prints an scrypt hash for web.users[].passwordHash: `npx tsx cloud/web/hash-password.ts`
// (reads the password from stdin so it stays out of shell history and `ps`).
import { createInterface } from 'node:readline/promises';
import { hashPassword } from './auth/passwords.ts';

const rl = createInterface({ input: process.stdin, output: process.stderr });
const password = await rl.question('password: ');
rl.close();
if (password.length < 8) {
  process.stderr.write('password must be at least 8 characters\n');
  process.exit(2);
}
process.stdout.write(`${await hashPassword(password)}\n`);
