// Calls to the AWS APIs from the browser (same origin): the playground's ConverseStream and a
// recorded call's replay. Event streams are decoded as they arrive.
import { authHeaders, errorMessage, errorType } from "./api";
import { EventStreamDecoder, eventOf } from "./eventstream";

export interface InvokeResult {
  status: number;
  requestId: string | null;
  errorType: string | null;
  message: string | null;
  events: Array<Record<string, unknown>>;
  body: unknown;
}

export async function invoke(
  method: string,
  path: string,
  body: string,
  onEvent?: (event: Record<string, unknown>) => void,
  signal?: AbortSignal,
): Promise<InvokeResult> {
  const response = await fetch(path, {
    method,
    body: method === "GET" ? undefined : body,
    headers: authHeaders({ "Content-Type": "application/json", Accept: "*/*" }),
    signal,
  });
  const result: InvokeResult = {
    status: response.status,
    requestId: response.headers.get("x-amzn-requestid"),
    errorType: errorType(response),
    message: null,
    events: [],
    body: null,
  };
  const type = response.headers.get("content-type") ?? "";
  if (response.ok && type.startsWith("application/vnd.amazon.eventstream") && response.body) {
    const decoder = new EventStreamDecoder();
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const message of decoder.push(value)) {
        const event = eventOf(message);
        result.events.push(event);
        if (message.headers[":message-type"] === "exception") {
          result.errorType = String(message.headers[":exception-type"]);
          result.message = errorMessage(Object.values(event)[0], result.errorType);
        }
        onEvent?.(event);
      }
    }
    return result;
  }
  const text = await response.text();
  try {
    result.body = text ? JSON.parse(text) : null;
  } catch {
    result.body = text;
  }
  if (!response.ok) result.message = errorMessage(result.body, response.statusText);
  return result;
}
