#!/usr/bin/env node
// Call Bedrock's OpenAI-compatible Chat Completions endpoint with the official `openai` npm
// package and report, as JSON lines on stdout, what the SDK hands to an application.
//
// Usage: node openai_client.mjs '<command JSON>'   (or the JSON on stdin)
//
// Command fields:
//   baseURL   "http://127.0.0.1:PORT/openai/v1" (required)
//   apiKey    the Bedrock API key (default "bedrock-api-key-example")
//   request   the chat.completions.create parameters (model, messages, stream, tools, ...)
//
// Output, one JSON object per line:
//   {"chunk": {...}}                       a streamed chat.completion.chunk
//   {"done": true, "completion": {...}}    the completion (null when streamed)
//   {"error": {"status", "name", "message", "code", "type", "body"}}
// An API error still exits 0, so callers can assert on it; a bad command exits 2.

import { readFileSync } from "node:fs";
import OpenAI from "openai";

const emit = (line) => process.stdout.write(JSON.stringify(line) + "\n");

function readCommand() {
  const arg = process.argv[2];
  const text = arg === undefined || arg === "-" ? readFileSync(0, "utf-8") : arg;
  return JSON.parse(text);
}

const cmd = readCommand();
if (!cmd.baseURL || !cmd.request) {
  process.stderr.write("openai_client.mjs: baseURL and request are required\n");
  process.exit(2);
}
const client = new OpenAI({
  baseURL: cmd.baseURL,
  apiKey: cmd.apiKey ?? "bedrock-api-key-example",
  maxRetries: 0,
});
try {
  const result = await client.chat.completions.create(cmd.request);
  if (cmd.request.stream) {
    for await (const chunk of result) emit({ chunk });
    emit({ done: true, completion: null });
  } else {
    emit({ done: true, completion: result });
  }
} catch (err) {
  if (!(err instanceof OpenAI.APIError)) throw err;
  emit({
    error: {
      status: err.status,
      name: err.constructor.name,
      message: err.message,
      code: err.code,
      type: err.type,
      body: err.error,
    },
  });
}
