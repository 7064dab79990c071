/**
 * A broker URL as it may appear in a log or an error: `mqtt://user:secret@host:1883` becomes
 * `mqtt://user:***@host:1883`. Config allows credentials in the URL (mqtt.js reads them),
 * so every place that logs a URL goes through this.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password && !u.username) return url;
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, url.endsWith('/') ? '/' : '');
  } catch {
    // not parseable: hide anything between :// and @
    return url.replace(/(\/\/[^/@:]*:)[^/@]*@/, '$1***@');
  }
}
