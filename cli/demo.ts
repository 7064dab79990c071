export async function runDemo(_argv: string[]): Promise<number> {
  process.stderr.write('screamwatch demo: not available yet in this build\n');
  return 1;
}
