import { describe, expect, it } from "vitest";
import { SseParser } from "../src/api";
import { converseBody } from "../src/converse";
import { pathFor, snippet, snippetKinds } from "../src/snippets";
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
  it("SageMaker: capitalised members, the body as sent when it is not JSON", () => {
    const sm = call({ service: "sagemaker-runtime", operation: "InvokeEndpointWithResponseStream", modelId: "ep1", path: "/endpoints/ep1/invocations-response-stream", request: { headers: [], body: "1,2,3" } });
    const py = snippet(sm, "boto3", "http://h");
    expect(py).toContain('client.invoke_endpoint_with_response_stream(EndpointName="ep1", Body="1,2,3", ContentType="application/json")');
    expect(py).toContain('for event in response["Body"]:');
    const js = snippet(sm, "js", "http://h");
    expect(js).toContain('EndpointName: "ep1"');
    expect(js).toContain('Body: "1,2,3"');
    expect(js).toContain("response.Body");
  });
  it("ApplyGuardrail: the guardrail and version from the path, no modelId", () => {
    const apply = call({ operation: "ApplyGuardrail", streaming: false, modelId: "", path: "/guardrail/g%201/version/DRAFT/apply", request: { headers: [], body: { source: "INPUT", content: [] } } });
    const py = snippet(apply, "boto3", "http://h");
    expect(py).toContain('"guardrailIdentifier": "g 1"');
    expect(py).toContain('"guardrailVersion": "DRAFT"');
    expect(py).not.toContain("modelId");
    expect(snippet(apply, "cli", "http://h")).toContain('"guardrailIdentifier":"g 1"');
  });
  it("replays against another model by its path", () => {
    expect(pathFor(call(), "amazon.nova-lite-v1:0")).toBe("/model/amazon.nova-lite-v1%3A0/converse-stream");
  });
});

describe("snippets for the OpenAI-compatible endpoint", () => {
  const chat = (stream: boolean) =>
    call({
      operation: stream ? "InvokeModelWithResponseStream" : "InvokeModel", streaming: stream, modelId: "openai.gpt-oss-20b-1:0",
      path: "/openai/v1/chat/completions",
      request: { headers: [], body: JSON.stringify({ model: "openai.gpt-oss-20b-1:0", messages: [{ role: "user", content: "it's" }], stream }) },
    });
  it("Python: the OpenAI SDK on this server's /openai/v1 with the Bedrock API key, no Bedrock operation", () => {
    const code = snippet(chat(true), "boto3", "http://127.0.0.1:4590");
    expect(code).toContain("from openai import OpenAI");
    expect(code).toContain('OpenAI(base_url="http://127.0.0.1:4590/openai/v1", api_key=os.environ["AWS_BEARER_TOKEN_BEDROCK"])');
    expect(code).toContain("client.chat.completions.create(**{");
    expect(code).toContain('"stream": True');
    expect(code).toContain("for chunk in response:");
    expect(code).not.toMatch(/boto3|invoke_model/);
    expect(snippet(chat(false), "boto3", "http://h")).toContain("print(response)");
  });
  it("JavaScript: the openai package, awaiting the chunks when it streams", () => {
    const code = snippet(chat(true), "js", "http://h");
    expect(code).toContain('import OpenAI from "openai";');
    expect(code).toContain('baseURL: "http://h/openai/v1", apiKey: process.env.AWS_BEARER_TOKEN_BEDROCK');
    expect(code).toContain("for await (const chunk of response)");
    expect(code).not.toContain("InvokeModel");
  });
  it("curl: the endpoint's path with the key as a bearer token; no AWS CLI tab", () => {
    const code = snippet(chat(true), "curl", "http://h");
    expect(code).toContain("'http://h/openai/v1/chat/completions'");
    expect(code).toContain('-H "Authorization: Bearer $AWS_BEARER_TOKEN_BEDROCK"');
    expect(code).toContain(`it'\\''s`);
    expect(code).not.toContain("--aws-sigv4");
    expect(snippetKinds(chat(true)).map(([kind]) => kind)).toEqual(["boto3", "js", "curl"]);
    expect(snippetKinds(call()).map(([kind]) => kind)).toEqual(["boto3", "js", "cli", "curl"]);
    expect(snippet(chat(false), "cli", "http://h")).toContain("The AWS CLI has no command for the OpenAI-compatible endpoint");
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
