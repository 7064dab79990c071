/** The dashboard's JSON API client: session cookie + CSRF header, coded errors. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function csrf(): string {
  return document.body.dataset.csrf ?? '';
}

async function handle<T>(res: Response): Promise<T> {
  if (res.status === 204) return undefined as T;
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: fall through with the status
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
    if (res.status === 401 && document.body.dataset.page !== 'login') {
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    throw new ApiError(
      res.status,
      err?.code ?? `HTTP_${res.status}`,
      err?.message ?? `request failed (${res.status})`,
    );
  }
  return body as T;
}

export async function get<T>(path: string): Promise<T> {
  return handle<T>(
    await fetch(path, { headers: { accept: 'application/json' }, credentials: 'same-origin' }),
  );
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  const init: RequestInit = {
    method: 'POST',
    credentials: 'same-origin',
    headers: { accept: 'application/json', 'x-csrf-token': csrf() },
  };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  return handle<T>(await fetch(path, init));
}
