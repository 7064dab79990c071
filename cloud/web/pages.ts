import type { Session } from './auth/sessions.ts';

export type PageName = 'events' | 'event' | 'fleet' | 'sensor' | 'analyse' | 'live' | 'models' | 'notfound';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const NAV: { page: PageName; href: string; label: string }[] = [
  { page: 'events', href: '/events', label: 'Events' },
  { page: 'fleet', href: '/fleet', label: 'Fleet' },
  { page: 'models', href: '/models', label: 'Models' },
  { page: 'analyse', href: '/analyse', label: 'Analyse a file' },
  { page: 'live', href: '/live', label: 'Live' },
];

const TITLES: Record<PageName, string> = {
  events: 'Events',
  event: 'Event',
  fleet: 'Fleet',
  sensor: 'Sensor',
  analyse: 'Analyse a file',
  live: 'Live detection',
  models: 'Models',
  notfound: 'Not found',
};

function head(title: string, extraCss = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(title)} · Screamwatch</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
${extraCss}<link rel="stylesheet" href="/static/styles.css">
</head>`;
}

const BRAND = `<a class="brand" href="/events"><svg viewBox="0 0 32 32" aria-hidden="true"><rect width="32" height="32" rx="8"/><path d="M9 20c2-8 4-8 5 0s3 8 5 0 3-8 4 0"/></svg><span>Screamwatch</span></a>`;

/** The server-rendered frame every signed-in page shares; client/app.ts fills `<main>`. */
export function renderPage(
  page: PageName,
  session: Session,
  csrfToken: string,
  data: { tileUrl: string; maxUploadBytes: number; eventId?: string; sensorId?: string; path?: string },
): string {
  const active = page === 'event' ? 'events' : page === 'sensor' ? 'fleet' : page;
  const nav = NAV.map(
    (n) => `<a href="${n.href}"${n.page === active ? ' aria-current="page"' : ''}>${escapeHtml(n.label)}</a>`,
  ).join('');
  const attrs = [
    `data-page="${page}"`,
    `data-csrf="${escapeHtml(csrfToken)}"`,
    `data-user="${escapeHtml(session.username)}"`,
    `data-role="${session.role}"`,
    `data-tile-url="${escapeHtml(data.tileUrl)}"`,
    `data-max-upload="${data.maxUploadBytes}"`,
    data.eventId ? `data-event-id="${escapeHtml(data.eventId)}"` : '',
    data.sensorId ? `data-sensor-id="${escapeHtml(data.sensorId)}"` : '',
  ].join(' ');
  const leaflet =
    page === 'events' || page === 'event' || page === 'sensor'
      ? '<link rel="stylesheet" href="/static/leaflet.css">\n<link rel="stylesheet" href="/static/markercluster.css">\n'
      : '';
  const script = page === 'live' ? '/static/live.js' : '/static/app.js';
  return `${head(TITLES[page], leaflet)}
<body ${attrs}>
<header class="topbar">
  ${BRAND}
  <nav class="mainnav">${nav}</nav>
  <div class="who"><span class="stream-state" id="stream-state" role="status"></span><button type="button" class="btn btn-ghost btn-small" id="sound-toggle" aria-pressed="true">Sound on</button><button type="button" class="btn btn-ghost btn-small" id="notify-toggle" hidden>Notify me</button><span class="who-name" title="Signed in as ${escapeHtml(session.username)} (${session.role})">${escapeHtml(session.username)}</span><button type="button" class="btn btn-ghost" id="logout">Sign out</button></div>
</header>
<div id="outage-banner" class="banner banner-warn" role="alert" hidden></div>
<main id="main" class="page page-${page}">${page === 'notfound' ? notFoundMain(data.path ?? '') : '<p class="loading">Loading…</p>'}</main>
<div id="toast" class="toast" role="status" aria-live="polite" hidden></div>
<script type="module" src="${script}"></script>
</body>
</html>`;
}

function notFoundMain(path: string): string {
  return `<div class="card empty not-found"><h1>Page not found</h1><p class="muted">There is no page at <code>${escapeHtml(path)}</code>. It may have been mistyped, or the link is from another installation.</p><p><a class="btn btn-primary" href="/events">Go to the events</a> <a class="btn" href="/fleet">Fleet</a></p></div>`;
}

export function renderLogin(next: string): string {
  return `${head('Sign in')}
<body data-page="login" class="login-body">
<main class="login-card">
  <div class="login-brand">${BRAND}</div>
  <h1>Sign in</h1>
  <p class="muted">Scream detection alerts and sensor health.</p>
  <form id="login-form" method="post" action="/api/login" novalidate>
    <input type="hidden" name="next" value="${escapeHtml(next)}">
    <label>Username<input name="username" autocomplete="username" autocapitalize="none" required autofocus></label>
    <label>Password<input name="password" type="password" autocomplete="current-password" required></label>
    <p id="login-error" class="form-error" role="alert" hidden></p>
    <button class="btn btn-primary btn-block" type="submit">Sign in</button>
  </form>
</main>
<script type="module" src="/static/app.js"></script>
</body>
</html>`;
}
