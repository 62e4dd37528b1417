// The shapes the console's API answers (src/outcrop/console/calls.py, assemble.py).

export interface CallRow {
  seq: number;
  id: string;
  time: number;
  service: string;
  operation: string;
  modelId: string;
  resolvedModel: string | null;
  engine: string | null;
  principal: string;
  status: number;
  errorCode: string | null;
  ttftMs: number | null;
  durationMs: number;
  inputTokens: number | null;
  outputTokens: number | null;
  tokensPerS: number | null;
  streaming: boolean;
  rules: string[];
}

export interface CallEvent {
  offsetMs: number;
  type: string;
  event: unknown;
}

export interface Assembled {
  text: string;
  reasoning: string;
  toolCalls: Array<Record<string, unknown>>;
  usage: Record<string, unknown> | null;
  metrics: Record<string, unknown> | null;
  guardrailTrace: unknown;
  stopReason: string | null;
  speech: {
    transcript: Array<{ role: string | null; text: string | null }>;
    audio: { sampleRateHertz: number; pcmBase64: string } | null;
  } | null;
}

export interface CallDetails extends CallRow {
  method: string;
  path: string;
  query: string;
  errorMessage: string | null;
  truncated: boolean;
  request: { headers: Array<[string, string]>; body: unknown };
  response: unknown;
  events: CallEvent[];
  assembled: Assembled;
}
