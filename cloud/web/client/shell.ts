import { post } from './api.ts';

/** Shared by every signed-in page: the sign-out button. */
export function initShell(): void {
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
