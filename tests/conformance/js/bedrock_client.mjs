#!/usr/bin/env node
// Call Bedrock Runtime or SageMaker Runtime with the official AWS SDK for JavaScript v3 and
// report, as JSON lines on stdout, what the SDK hands to an application.
//
// Usage: node bedrock_client.mjs '<command JSON>'   (or the JSON on stdin, or '-' for stdin)
//
// Command fields:
//   endpoint     "http://127.0.0.1:PORT" (required; https:// uses TLS, trust a CA through
//                NODE_EXTRA_CA_CERTS)
//   operation    an SDK operation name without "Command": InvokeModel,
//                InvokeModelWithResponseStream, Converse, ConverseStream, CountTokens,
//                InvokeModelWithBidirectionalStream, InvokeEndpoint,
//                InvokeEndpointWithResponseStream, ... (required)
//   service      "bedrock-runtime" | "sagemaker-runtime" | "bedrock" (the control plane:
//                ListFoundationModels, GetFoundationModel, ...; default: sagemaker-runtime for
//                InvokeEndpoint*, else bedrock-runtime)
//   region       default "us-east-1"
//   modelId      Bedrock model id (input.modelId)
//   endpointName SageMaker endpoint name (input.EndpointName)
//   body         request body: an object/array is sent as JSON, a string as is
//   contentType, accept   set the matching input members. When `body` is an object/array and
//                contentType is absent, "application/json" is sent (as AWS's examples do; the
//                SDK alone would send application/octet-stream); pass null to send none.
//   input        any further input members, passed through unchanged (e.g. Converse messages)
//   inputEvents  bidirectional stream only: [{"json": {...}} | {"text": "..."}, "delayMs": n,
//                "waitFor": "name", "waitForCount": n]; each becomes a `chunk` input event,
//                sent after its delay and, with `waitFor`, once `waitForCount` (default 1)
//                output chunks whose JSON's `event` has the member `name` (e.g. Nova Sonic's
//                "completionEnd") have arrived: waiting on the answer, not on a timer
//   endInputDelayMs   bidirectional: wait this long after the last input event before closing
//   endInputOn   bidirectional: close the input once an output chunk's `event` has this member
//                (as `waitFor`), or the stream ended
//   abortAfterEvents  abort the call (AbortController) after this many stream events
//   maxAttempts  SDK retry attempts (default: the SDK's own)
//   systemClockOffsetMs  start the SDK with this clock offset (it signs with now + offset and
//                corrects the offset from the response's Date header, as after clock skew)
//   handler      "http1" | "http2": override the SDK's default request handler
//   bearerToken  sets AWS_BEARER_TOKEN_BEDROCK for this client
// Credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
//
// Output, one JSON object per line, each with "t" = performance.now() in ms (monotonic):
//   {"t", "sent": i}                       a bidirectional input event was handed to the SDK
//   {"t", "event": member, "value": {...}, "data": ...}
//                                          a stream event; blobs in "value" are UTF-8 strings,
//                                          "data" is the blob parsed as JSON when it is JSON
//   {"t", "done": true, "output": {...}, "$metadata": {...}, "response": {statusCode, headers},
//    "responses": [...every attempt...], "request": {...last signed request...}, "events": n,
//    "aborted": bool}
//   {"t", "error": {"name", "message", "$fault", "$metadata", ...modelled members},
//    "response", "responses", "request", "events": n}
// A service or transport error still exits 0, so callers can assert on it; a bad command exits 2.

import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

const now = () => Math.round(performance.now() * 10) / 10;
const emit = (line) => process.stdout.write(JSON.stringify({ t: now(), ...line }) + "\n");
const utf8 = new TextDecoder("utf-8");
const encoder = new TextEncoder();

function readCommand() {
  const arg = process.argv[2];
  const text = arg === undefined || arg === "-" ? readFileSync(0, "utf-8") : arg;
  return JSON.parse(text);
}

function usage(message) {
  process.stderr.write(`bedrock_client.mjs: ${message}\n`);
  process.exit(2);
}

function encodeBody(body) {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return encoder.encode(body);
  return encoder.encode(JSON.stringify(body));
}

function tryJson(text) {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

// Make SDK values printable: blobs become UTF-8 text, dates ISO strings, streams are skipped.
function plain(value) {
  if (value instanceof Uint8Array) return utf8.decode(value);
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") {
    if (Symbol.asyncIterator in value) return "<stream>";
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "$metadata" || k === "$response") continue;
      out[k] = plain(v);
    }
    return out;
  }
  return value;
}

// The JSON inside an event's single blob member (Bedrock chunk.bytes, SageMaker PayloadPart.Bytes).
function blobJson(value) {
  if (!value || typeof value !== "object") return undefined;
  const blobs = Object.values(value).filter((v) => v instanceof Uint8Array);
  if (blobs.length !== 1) return undefined;
  const parsed = tryJson(utf8.decode(blobs[0]));
  return parsed.ok ? parsed.value : undefined;
}

function describeError(error) {
  const out = { name: error?.name, message: error?.message };
  if (error && typeof error === "object") {
    for (const [k, v] of Object.entries(error)) {
      if (k === "$response" || k === "stack") continue;
      out[k] = plain(v);
    }
    if (error.$metadata) out.$metadata = error.$metadata;
    if (error.code !== undefined) out.code = error.code;
  }
  return out;
}

function defaultService(operation) {
  return operation.startsWith("InvokeEndpoint") ? "sagemaker-runtime" : "bedrock-runtime";
}

async function loadClient(service) {
  if (service === "bedrock-runtime") {
    const sdk = await import("@aws-sdk/client-bedrock-runtime");
    return { sdk, Client: sdk.BedrockRuntimeClient };
  }
  if (service === "sagemaker-runtime") {
    const sdk = await import("@aws-sdk/client-sagemaker-runtime");
    return { sdk, Client: sdk.SageMakerRuntimeClient };
  }
  if (service === "bedrock") {
    const sdk = await import("@aws-sdk/client-bedrock");
    return { sdk, Client: sdk.BedrockClient };
  }
  usage(`unknown service ${service}`);
}

async function requestHandler(kind) {
  if (kind === undefined) return undefined;
  const { NodeHttpHandler, NodeHttp2Handler } = await import("@smithy/node-http-handler");
  if (kind === "http1") return new NodeHttpHandler();
  if (kind === "http2") return new NodeHttp2Handler({ disableConcurrentStreams: true });
  usage(`unknown handler ${kind}`);
}

function buildInput(cmd, service) {
  const input = { ...(cmd.input ?? {}) };
  const body = encodeBody(cmd.body);
  const jsonBody = cmd.body !== null && typeof cmd.body === "object";
  const contentType =
    cmd.contentType === undefined ? (jsonBody ? "application/json" : undefined) : cmd.contentType;
  if (service === "sagemaker-runtime") {
    if (cmd.endpointName !== undefined) input.EndpointName = cmd.endpointName;
    if (body !== undefined) input.Body = body;
    if (contentType != null) input.ContentType = contentType;
    if (cmd.accept !== undefined) input.Accept = cmd.accept;
  } else {
    if (cmd.modelId !== undefined) input.modelId = cmd.modelId;
    if (body !== undefined) input.body = body;
    if (contentType != null) input.contentType = contentType;
    if (cmd.accept !== undefined) input.accept = cmd.accept;
  }
  if (cmd.operation === "InvokeModelWithBidirectionalStream") {
    input.body = inputEvents(cmd.inputEvents ?? [], cmd.endInputDelayMs ?? 0, cmd.endInputOn);
  }
  return input;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Output events seen so far, by the member of their JSON's `event` (Nova Sonic's names), and
// the input side's waits on them; all waits end when the output stream does.
const outputSeen = new Map();
let outputEnded = false;
let outputWaiters = [];

function outputArrived(data) {
  const event = data && typeof data === "object" ? data.event : undefined;
  if (event && typeof event === "object") {
    for (const name of Object.keys(event)) outputSeen.set(name, (outputSeen.get(name) ?? 0) + 1);
  }
  wakeOutputWaiters();
}

function outputEnd() {
  outputEnded = true;
  wakeOutputWaiters();
}

function wakeOutputWaiters() {
  const waiting = outputWaiters;
  outputWaiters = [];
  for (const wake of waiting) wake();
}

async function waitForOutput(name, count) {
  while (!outputEnded && (outputSeen.get(name) ?? 0) < count) {
    await new Promise((resolve) => outputWaiters.push(resolve));
  }
}

async function* inputEvents(events, endDelayMs, endOn) {
  for (const [index, event] of events.entries()) {
    if (event.delayMs) await sleep(event.delayMs);
    if (event.waitFor !== undefined) await waitForOutput(event.waitFor, event.waitForCount ?? 1);
    const bytes = event.text !== undefined ? encoder.encode(event.text) : encodeBody(event.json);
    emit({ sent: index });
    yield { chunk: { bytes } };
  }
  if (endDelayMs) await sleep(endDelayMs);
  if (endOn !== undefined) await waitForOutput(endOn, 1);
}

// Record every raw HTTP response (and the signed request) below the deserializer, so status
// and headers are known even when deserialization throws.
function captureTraffic(client, traffic) {
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request;
      traffic.request = {
        method: req.method,
        hostname: req.hostname,
        port: req.port,
        path: req.path,
        headers: { ...req.headers },
      };
      const result = await next(args);
      const res = result.response;
      const seen = { statusCode: res.statusCode, headers: { ...res.headers } };
      traffic.responses.push(seen);
      return result;
    },
    { step: "deserialize", priority: "low", name: "outcropCaptureTraffic" },
  );
}

async function main() {
  let cmd;
  try {
    cmd = readCommand();
  } catch (error) {
    usage(`the command is not JSON: ${error.message}`);
  }
  if (!cmd.endpoint) usage("missing endpoint");
  if (!cmd.operation) usage("missing operation");
  const service = cmd.service ?? defaultService(cmd.operation);
  if (cmd.bearerToken !== undefined) process.env.AWS_BEARER_TOKEN_BEDROCK = cmd.bearerToken;

  const { sdk, Client } = await loadClient(service);
  const Command = sdk[`${cmd.operation}Command`];
  if (!Command) usage(`${service} has no operation ${cmd.operation}`);
  const config = { endpoint: cmd.endpoint, region: cmd.region ?? "us-east-1" };
  if (cmd.maxAttempts !== undefined) config.maxAttempts = cmd.maxAttempts;
  if (cmd.systemClockOffsetMs !== undefined) config.systemClockOffset = cmd.systemClockOffsetMs;
  const handler = await requestHandler(cmd.handler);
  if (handler !== undefined) config.requestHandler = handler;
  const client = new Client(config);
  const traffic = { responses: [], request: undefined };
  captureTraffic(client, traffic);

  const abort = new AbortController();
  let events = 0;
  let aborted = false;
  const transport = () => ({
    response: traffic.responses.at(-1),
    responses: traffic.responses,
    request: traffic.request,
    events,
  });
  try {
    const output = await client.send(new Command(buildInput(cmd, service)), {
      abortSignal: abort.signal,
    });
    const streamKey = Object.keys(output).find(
      (k) => output[k] && typeof output[k] === "object" && Symbol.asyncIterator in output[k],
    );
    if (streamKey !== undefined) {
      for await (const event of output[streamKey]) {
        for (const [member, value] of Object.entries(event)) {
          const line = { event: member, value: plain(value) };
          const data = blobJson(value);
          if (data !== undefined) line.data = data;
          emit(line);
          outputArrived(data);
        }
        events += 1;
        if (cmd.abortAfterEvents !== undefined && events >= cmd.abortAfterEvents) {
          aborted = true;
          abort.abort();
          break;
        }
      }
    }
    const printable = plain(output);
    for (const key of ["body", "Body"]) {
      if (typeof printable[key] === "string") {
        const parsed = tryJson(printable[key]);
        if (parsed.ok) printable[key] = parsed.value;
      }
    }
    emit({ done: true, output: printable, $metadata: output.$metadata, aborted, ...transport() });
  } catch (error) {
    emit({ error: describeError(error), ...transport() });
  } finally {
    outputEnd();
    client.destroy();
  }
}

main().then(
  () => process.stdout.write("", () => process.exit(0)),
  (error) => {
    process.stderr.write(`bedrock_client.mjs: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
