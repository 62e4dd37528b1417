// Talking to the server: the console's API, the admin APIs and the AWS APIs on the same port.
// With authentication on (auth mode verify) every call carries `Authorization: Bearer KEY`,
// a Bedrock API key the user typed once (kept in this tab's sessionStorage, never a cookie).

export const CONSOLE_API = "/_outcrop/console/api";
const TOKEN_KEY = "outcrop.console.token";

export function getToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token: string): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errorType: string | null,
  ) {
    super(message);
  }
}

export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

/** A request answered with JSON; ApiError (AWS's message and X-Amzn-ErrorType) otherwise. */
export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers = authHeaders({ "Content-Type": "application/json" });
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    throw new ApiError(response.status, errorMessage(data, response.statusText), errorType(response));
  }
  return data as T;
}

export function errorType(response: Response): string | null {
  const raw = response.headers.get("x-amzn-errortype");
  return raw ? raw.split(":")[0] : null;
}

export function errorMessage(data: unknown, fallback: string): string {
  if (data && typeof data === "object") {
    const record = data as Record<string, unknown>;
    const message = record.message ?? record.Message;
    if (typeof message === "string") return message;
  }
  return typeof data === "string" && data ? data : fallback;
}

/** Reads a server-sent-events response, calling `onEvent` per event; resolves when it ends. */
export async function readSse(
  response: Response,
  onEvent: (event: string, data: string) => void,
  signal: AbortSignal,
): Promise<void> {
  if (!response.body) return;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  const parser = new SseParser(onEvent);
  signal.addEventListener("abort", () => void reader.cancel());
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    pending += decoder.decode(value, { stream: true });
    pending = parser.feed(pending);
  }
}

export class SseParser {
  constructor(private readonly onEvent: (event: string, data: string) => void) {}

  /** Handles every complete event in `text`; returns what is left (an incomplete event). */
  feed(text: string): string {
    let at: number;
    while ((at = text.indexOf("\n\n")) >= 0) {
      const block = text.slice(0, at);
      text = text.slice(at + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) this.onEvent(event, data.join("\n"));
    }
    return text;
  }
}
