/** A one-line progress bar on a TTY (stderr); silent otherwise, so pipes and logs stay clean. */
export class ProgressBar {
  private readonly enabled: boolean;
  private last = 0;
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.enabled = Boolean(stream.isTTY);
  }

  update(label: string, done: number, total: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (done < total && now - this.last < 100) return;
    this.last = now;
    const width = 30;
    const filled = total > 0 ? Math.round((done / total) * width) : 0;
    this.stream.write(
      `\r${label.padEnd(28).slice(0, 28)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}\x1b[K`,
    );
    if (done >= total) this.stream.write('\n');
  }
}
