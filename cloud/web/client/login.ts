import { ApiError, post } from './api.ts';

export function initLogin(): void {
  const form = document.getElementById('login-form') as HTMLFormElement;
  const error = document.getElementById('login-error') as HTMLElement;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector('button')!;
    button.disabled = true;
    error.hidden = true;
    try {
      await post('/api/login', {
        username: String(data.get('username') ?? ''),
        password: String(data.get('password') ?? ''),
      });
      location.assign(String(data.get('next') || '/events'));
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : 'cannot reach the server';
      error.hidden = false;
      button.disabled = false;
    }
  });
}
