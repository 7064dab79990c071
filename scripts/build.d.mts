export const DAEMON_EXTERNAL: string[];
export function buildAll(options?: { quiet?: boolean }): Promise<{ daemon: unknown; cli: unknown }>;
