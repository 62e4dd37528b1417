import { describe, expect, it } from "vitest";
import { SseParser } from "../src/api";
import { converseBody } from "../src/converse";
import { pathFor, snippet } from "../src/snippets";
import type { CallDetails } from "../src/types";

function call(extra: Partial<CallDetails> = {}): CallDetails {
  return {
    seq: 1, id: "r1", time: 0, service: "bedrock-runtime", operation: "ConverseStream",
    modelId: "anthropic.claude-3-haiku-20240307-v1:0", resolvedModel: null, engine: "default",
    principal: "", status: 200, errorCode: null, ttftMs: 1, durationMs: 2, inputTokens: 1,
    outputTokens: 1, tokensPerS: null, streaming: true, rules: [], method: "POST",
    path: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", query: "",
    errorMessage: null, truncated: false,
    request: { headers: [], body: { messages: [{ role: "user", content: [{ text: "it's" }] }] } },
    response: null, events: [],
    assembled: { text: "", reasoning: "", toolCalls: [], usage: null, metrics: null, guardrailTrace: null, stopReason: null, speech: null },
    ...extra,
  };
}

describe("snippets", () => {
  it("boto3: the operation's method with the body as keyword arguments", () => {
    const code = snippet(call(), "boto3", "http://127.0.0.1:4590");
    expect(code).toContain('endpoint_url="http://127.0.0.1:4590"');
    expect(code).toContain("client.converse_stream(**{");
    expect(code).toContain('"modelId": "anthropic.claude-3-haiku-20240307-v1:0"');
    expect(code).toContain('for event in response["stream"]:');
  });
  it("InvokeModel: the body serialized, for boto3 and JS", () => {
    const invoke = call({ operation: "InvokeModel", streaming: false, request: { headers: [], body: { prompt: "x", flag: true } } });
    expect(snippet(invoke, "boto3", "http://h")).toContain('"flag": True');
    expect(snippet(invoke, "js", "http://h")).toContain("new InvokeModelCommand(");
  });
  it("curl and the AWS CLI quote single quotes for the shell", () => {
    expect(snippet(call(), "curl", "http://h")).toContain(`it'\\''s`);
    expect(snippet(call({ operation: "Converse", streaming: false }), "cli", "http://h")).toContain("aws bedrock-runtime converse");
    expect(snippet(call(), "cli", "http://h")).toContain("no command for ConverseStream");
  });
  it("replays against another model by its path", () => {
    expect(pathFor(call(), "amazon.nova-lite-v1:0")).toBe("/model/amazon.nova-lite-v1%3A0/converse-stream");
  });
});

describe("converseBody", () => {
  const form = { system: "Be brief.", maxTokens: "64", temperature: "0.5", topP: "", tools: "", schema: "", guardrailId: "", guardrailVersion: "DRAFT" };
  it("maps the playground's fields to ConverseStream members", () => {
    const body = converseBody({ ...form, guardrailId: "g1", tools: '[{"name":"t","inputSchema":{"json":{}}}]', schema: '{"type":"object"}' }, [{ role: "user", text: "hi" }]);
    expect(body.system).toEqual([{ text: "Be brief." }]);
    expect(body.inferenceConfig).toEqual({ maxTokens: 64, temperature: 0.5 });
    expect(body.toolConfig).toEqual({ tools: [{ toolSpec: { name: "t", inputSchema: { json: {} } } }] });
    expect(body.guardrailConfig).toEqual({ guardrailIdentifier: "g1", guardrailVersion: "DRAFT", trace: "enabled" });
    expect(JSON.stringify(body.outputConfig)).toContain('"schema":"{\\"type\\":\\"object\\"}"');
  });
  it("names the field that does not parse", () => {
    expect(() => converseBody({ ...form, temperature: "warm" }, [])).toThrow("temperature must be a number");
    expect(() => converseBody({ ...form, tools: "{" }, [])).toThrow(/Tools must be JSON/);
  });
});

describe("SseParser", () => {
  it("splits events, skips comments, keeps the incomplete rest", () => {
    const seen: Array<[string, string]> = [];
    const parser = new SseParser((event, data) => seen.push([event, data]));
    const rest = parser.feed(': hello\n\nevent: call\ndata: {"seq":1}\n\nevent: call\ndata: {"se');
    expect(seen).toEqual([["call", '{"seq":1}']]);
    expect(parser.feed(rest + 'q":2}\n\n')).toBe("");
    expect(seen[1]).toEqual(["call", '{"seq":2}']);
  });
});
