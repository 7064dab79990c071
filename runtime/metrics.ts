import { Counter, type Registry } from 'prom-client';

/**
 * A Prometheus counter whose value is read at scrape time from a running total the service
 * already keeps (the daemon's and the bridge's stats), instead of being incremented twice.
 */
export function observedCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
