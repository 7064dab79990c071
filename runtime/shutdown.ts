/** What signal handlers are installed on (the process; tests pass an EventEmitter). */
export interface SignalTarget {
  on(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export interface HandleSignalsOptions {
  /** Default SIGTERM and SIGINT (systemd stops with SIGTERM, a terminal with Ctrl-C). */
  signals?: readonly NodeJS.Signals[];
  /** The first signal (it requested the shutdown). */
  onFirst?: (signal: NodeJS.Signals) => void;
  /** Any later signal: shutdown is already running and is not run again. */
  onRepeat?: (signal: NodeJS.Signals) => void;
  target?: SignalTarget;
}

/**
 * A shutdown is requested once, by a signal or by the program (a file replay that ended, a
 * test): the first request wins, later ones are reported and otherwise ignored, so a second
 * SIGTERM neither runs shutdown twice nor kills the process mid-flush (zigbee2mqtt's
 * controller does the same).
 */
export class ShutdownRequest {
  private resolveRequested!: (reason: string) => void;
  private why: string | null = null;
  /** Resolves with the first reason (a signal name or the program's reason). */
  readonly requested: Promise<string>;

  constructor() {
    this.requested = new Promise<string>((resolve) => {
      this.resolveRequested = resolve;
    });
  }

  get isRequested(): boolean {
    return this.why !== null;
  }

  get reason(): string | null {
    return this.why;
  }

  /** True if this call requested the shutdown; false if one was already requested. */
  request(reason: string): boolean {
    if (this.why !== null) return false;
    this.why = reason;
    this.resolveRequested(reason);
    return true;
  }

  /**
   * Installs the signal handlers; returns their remover. Leaving them installed until the
   * process exits is deliberate where a late second signal must not kill a finished process.
   */
  handleSignals(options: HandleSignalsOptions = {}): () => void {
    const target = options.target ?? process;
    const signals = options.signals ?? (['SIGTERM', 'SIGINT'] as const);
    const listener = (signal: NodeJS.Signals) => {
      if (this.request(signal)) options.onFirst?.(signal);
      else options.onRepeat?.(signal);
    };
    for (const s of signals) target.on(s, listener);
    return () => {
      for (const s of signals) target.off(s, listener);
    };
  }
}
