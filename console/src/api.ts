/**
 * The console's one way to call the relay: same origin, `Authorization: Bearer` from the
 * in-memory session, errors turned into `ApiError` with the relay's own code and message.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiOptions {
  token: () => string | null;
  /** The relay refused the token (expired, revoked): the app signs out. */
  onUnauthorized: () => void;
}

export class Api {
  constructor(private readonly options: ApiOptions) {}

  /** The raw response (streamed bodies); a non-2xx answer is thrown as ApiError. */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const token = this.options.token();
    if (token) headers.set('authorization', `Bearer ${token}`);
    const res = await fetch(path, { ...init, headers, credentials: 'omit', cache: 'no-store' });
    if (!res.ok) throw await toError(res, () => this.options.onUnauthorized());
    return res;
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.fetch(path, init);
    return (await res.json()) as T;
  }

  /** JSON in, JSON (or nothing, for 204) out. */
  async send<T>(method: string, path: string, body?: unknown): Promise<T | undefined> {
    const res = await this.fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return res.status === 204 ? undefined : ((await res.json()) as T);
  }
}

export async function toError(res: Response, onUnauthorized?: () => void): Promise<ApiError> {
  let code = 'http_error';
  let message = `the relay answered ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // Not the relay's JSON (a proxy's error page): the status says enough.
  }
  if (res.status === 401) onUnauthorized?.();
  return new ApiError(res.status, code, message);
}

/** What a person should read for an error thrown by a call. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof DOMException && error.name === 'AbortError') return 'stopped';
  return 'the relay could not be reached';
}
