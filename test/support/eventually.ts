/**
 * The one polling helper of the tests: calls `probe` until it returns a truthy value, and
 * returns that. A probe that throws
 * is tried again (a process still starting, a file not written yet); on timeout the error names
 * `what` and the probe's last error. Bounded: every loop here has a deadline.
 */
export async function eventually<T>(
  probe: () => T | null | undefined | false | 0 | '' | Promise<T | null | undefined | false | 0 | ''>,
  timeoutMs = 10_000,
  what = 'condition',
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const reason = last ? `: ${(last as Error).message ?? String(last)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
