import { post } from './api.ts';
import { liveStream } from './live-stream.ts';
import { initScreamAlarm } from './scream-alarm.ts';

/** Shared by every signed-in page: the sign-out button. */
export function initShell(): void {
  initScreamAlarm();
  // pages without a list of their own still hear about new screams
  const page = document.body.dataset.page;
  if (page === 'analyse' || page === 'live') liveStream();
  document.getElementById('logout')?.addEventListener('click', async () => {
    try {
      await post('/api/logout');
    } finally {
      location.assign('/login');
    }
  });
}

export function isAdmin(): boolean {
  return document.body.dataset.role === 'admin';
}
