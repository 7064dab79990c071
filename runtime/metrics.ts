import { Counter, Gauge, type Registry } from 'prom-client';

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

/**
 * A Prometheus gauge read at scrape time from state the service already has; `null` (not
 * known yet) exports no sample rather than a made-up 0.
 */
export function observedGauge(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | null,
): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      if (v === null) this.reset();
      else this.set(v);
    },
  });
}
