// A recorded call as code that makes it again: boto3, the AWS SDK for JavaScript v3, the AWS
// CLI and curl (`--aws-sigv4` signs with the environment's credentials). A call to the
// OpenAI-compatible endpoint (/openai/v1/chat/completions) is made again with the OpenAI SDKs
// (base URL on this server, the Bedrock API key from AWS_BEARER_TOKEN_BEDROCK as the API key)
// or curl with that key as a bearer token; the AWS CLI has no command for it.
import type { CallDetails } from "./types";

const PY_METHODS: Record<string, string> = {
  Converse: "converse",
  ConverseStream: "converse_stream",
  InvokeModel: "invoke_model",
  InvokeModelWithResponseStream: "invoke_model_with_response_stream",
  ApplyGuardrail: "apply_guardrail",
  CountTokens: "count_tokens",
  InvokeEndpoint: "invoke_endpoint",
  InvokeEndpointWithResponseStream: "invoke_endpoint_with_response_stream",
};

const CLI_COMMANDS: Record<string, string> = {
  Converse: "converse",
  InvokeModel: "invoke-model",
  ApplyGuardrail: "apply-guardrail",
  InvokeEndpoint: "invoke-endpoint",
};

export type SnippetKind = "boto3" | "js" | "cli" | "curl";

/** Whether the call went to Bedrock's OpenAI-compatible Chat Completions endpoint. */
export function isOpenAi(call: CallDetails): boolean {
  return call.path.startsWith("/openai/");
}

/** The "Copy as" choices for a call, with their labels (no AWS CLI for OpenAI-endpoint calls). */
export function snippetKinds(call: CallDetails): Array<[SnippetKind, string]> {
  if (isOpenAi(call)) {
    return [["boto3", "OpenAI Python"], ["js", "OpenAI JavaScript"], ["curl", "curl"]];
  }
  return [["boto3", "boto3"], ["js", "JavaScript v3"], ["cli", "AWS CLI"], ["curl", "curl"]];
}

/** The request body as a value: JSON text parsed when it parses (a truncated body does not). */
function bodyValue(call: CallDetails): unknown {
  const body = call.request.body;
  if (typeof body !== "string") return body ?? {};
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return body;
  }
}

/** The request body as text (JSON pretty-printed when it is JSON). */
function bodyText(call: CallDetails): string {
  const body = call.request.body;
  return typeof body === "string" ? body : JSON.stringify(body ?? {}, null, 2);
}

function isInvoke(call: CallDetails): boolean {
  return call.operation.startsWith("InvokeModel") || call.operation.startsWith("InvokeEndpoint");
}

function serviceName(call: CallDetails): string {
  return call.service === "sagemaker-runtime" ? "sagemaker-runtime" : "bedrock-runtime";
}

function pyValue(value: unknown, indent = 0): string {
  const pad = " ".repeat(indent);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => `${pad}    ${pyValue(v, indent + 4)}`).join(",\n")},\n${pad}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (!entries.length) return "{}";
  return `{\n${entries
    .map(([k, v]) => `${pad}    ${JSON.stringify(k)}: ${pyValue(v, indent + 4)}`)
    .join(",\n")},\n${pad}}`;
}

/** The operation's parameters: the path's members (model, or guardrail and version) and the body's. */
function converseKwargs(call: CallDetails): Record<string, unknown> {
  const body = bodyValue(call) as Record<string, unknown>;
  const guardrail = /^\/guardrail\/([^/]+)\/version\/([^/]+)\/apply$/.exec(call.path);
  if (call.operation === "ApplyGuardrail" && guardrail) {
    return {
      guardrailIdentifier: decodeURIComponent(guardrail[1]),
      guardrailVersion: decodeURIComponent(guardrail[2]),
      ...body,
    };
  }
  return { modelId: call.modelId, ...body };
}

export function snippet(call: CallDetails, kind: SnippetKind, endpoint: string): string {
  if (isOpenAi(call)) return openAiSnippet(call, kind, endpoint);
  switch (kind) {
    case "boto3":
      return boto3Snippet(call, endpoint);
    case "js":
      return jsSnippet(call, endpoint);
    case "cli":
      return cliSnippet(call, endpoint);
    case "curl":
      return curlSnippet(call, endpoint);
  }
}

function boto3Snippet(call: CallDetails, endpoint: string): string {
  const method = PY_METHODS[call.operation] ?? call.operation;
  const lines = [
    "import boto3",
    "",
    `client = boto3.client("${serviceName(call)}", region_name="us-east-1", endpoint_url="${endpoint}")`,
  ];
  const sagemaker = call.service === "sagemaker-runtime";
  if (isInvoke(call)) {
    // SageMaker's members are capitalised (EndpointName, Body, ContentType), Bedrock's are not.
    const [name, bodyName, typeName] = sagemaker ? ["EndpointName", "Body", "ContentType"] : ["modelId", "body", "contentType"];
    const body = bodyValue(call);
    const text = typeof body === "string" ? JSON.stringify(body) : "json.dumps(body)";
    lines.push(
      ...(typeof body === "string" ? [] : [`body = ${pyValue(body)}`]),
      `response = client.${method}(${name}=${JSON.stringify(call.modelId)}, ${bodyName}=${text}, ${typeName}="application/json")`,
    );
    lines.splice(0, 1, "import json", "import boto3");
  } else {
    lines.push(`response = client.${method}(**${pyValue(converseKwargs(call))})`);
  }
  if (call.streaming) {
    const key = call.operation === "ConverseStream" ? '"stream"' : sagemaker ? '"Body"' : '"body"';
    lines.push(`for event in response[${key}]:`, "    print(event)");
  } else {
    lines.push("print(response)");
  }
  return lines.join("\n") + "\n";
}

function jsSnippet(call: CallDetails, endpoint: string): string {
  const sagemaker = call.service === "sagemaker-runtime";
  const pkg = sagemaker ? "@aws-sdk/client-sagemaker-runtime" : "@aws-sdk/client-bedrock-runtime";
  const client = sagemaker ? "SageMakerRuntimeClient" : "BedrockRuntimeClient";
  const command = `${call.operation}Command`;
  let input: string;
  if (isInvoke(call)) {
    const [name, bodyName, typeName] = sagemaker ? ["EndpointName", "Body", "ContentType"] : ["modelId", "body", "contentType"];
    const body = bodyValue(call);
    const text = typeof body === "string" ? JSON.stringify(body) : `JSON.stringify(${bodyText(call).replace(/\n/g, "\n  ")})`;
    input = `{\n  ${name}: ${JSON.stringify(call.modelId)},\n  ${typeName}: "application/json",\n  ${bodyName}: ${text},\n}`;
  } else {
    input = JSON.stringify(converseKwargs(call), null, 2);
  }
  const lines = [
    `import { ${client}, ${command} } from "${pkg}";`,
    "",
    `const client = new ${client}({ region: "us-east-1", endpoint: "${endpoint}" });`,
    `const response = await client.send(new ${command}(${input}));`,
  ];
  if (call.streaming) {
    const key = call.operation === "ConverseStream" ? "stream" : sagemaker ? "Body" : "body";
    lines.push(`for await (const event of response.${key}) console.log(event);`);
  } else {
    lines.push("console.log(response);");
  }
  return lines.join("\n") + "\n";
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function cliSnippet(call: CallDetails, endpoint: string): string {
  const service = serviceName(call);
  const command = CLI_COMMANDS[call.operation];
  if (!command) {
    return `# The AWS CLI has no command for ${call.operation} (streaming operations); use the SDKs.\n`;
  }
  const base = `aws ${service} ${command} --endpoint-url ${endpoint} --region us-east-1`;
  if (isInvoke(call)) {
    const name = call.service === "sagemaker-runtime" ? "--endpoint-name" : "--model-id";
    return `${base} \\\n  ${name} ${shellQuote(call.modelId)} \\\n  --content-type application/json \\\n  --cli-binary-format raw-in-base64-out \\\n  --body ${shellQuote(JSON.stringify(call.request.body))} \\\n  output.json\n`;
  }
  return `${base} \\\n  --cli-input-json ${shellQuote(JSON.stringify(converseKwargs(call)))}\n`;
}

function curlSnippet(call: CallDetails, endpoint: string): string {
  const url = `${endpoint}${call.path}${call.query ? `?${call.query}` : ""}`;
  const sign = call.service === "sagemaker-runtime" ? "sagemaker" : "bedrock";
  const body = typeof call.request.body === "string" ? call.request.body : JSON.stringify(call.request.body);
  return [
    `curl -sS -X ${call.method} ${shellQuote(url)} \\`,
    `  --aws-sigv4 "aws:amz:us-east-1:${sign}" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  --data-binary ${shellQuote(body ?? "")}${call.streaming ? " --output stream.bin" : ""}`,
  ].join("\n") + "\n";
}

const OPENAI_KEY_NOTE = "AWS_BEARER_TOKEN_BEDROCK holds a Bedrock API key (any key in auth mode open)";

function openAiSnippet(call: CallDetails, kind: SnippetKind, endpoint: string): string {
  const baseUrl = `${endpoint}/openai/v1`;
  const body = bodyValue(call);
  const streaming = typeof body === "object" && body !== null && (body as Record<string, unknown>).stream === true;
  switch (kind) {
    case "boto3":
      return [
        "import os",
        "",
        "from openai import OpenAI",
        "",
        `# ${OPENAI_KEY_NOTE}`,
        `client = OpenAI(base_url="${baseUrl}", api_key=os.environ["AWS_BEARER_TOKEN_BEDROCK"])`,
        `response = client.chat.completions.create(**${pyValue(body)})`,
        ...(streaming ? ["for chunk in response:", "    print(chunk)"] : ["print(response)"]),
      ].join("\n") + "\n";
    case "js":
      return [
        'import OpenAI from "openai";',
        "",
        `// ${OPENAI_KEY_NOTE}`,
        `const client = new OpenAI({ baseURL: "${baseUrl}", apiKey: process.env.AWS_BEARER_TOKEN_BEDROCK });`,
        `const response = await client.chat.completions.create(${JSON.stringify(body, null, 2)});`,
        streaming ? "for await (const chunk of response) console.log(chunk);" : "console.log(response);",
      ].join("\n") + "\n";
    case "cli":
    case "curl": {
      const text = typeof call.request.body === "string" ? call.request.body : JSON.stringify(body);
      const lines = [
        `# ${OPENAI_KEY_NOTE}`,
        `curl -sS${streaming ? "N" : ""} -X ${call.method} ${shellQuote(`${endpoint}${call.path}`)} \\`,
        `  -H "Authorization: Bearer $AWS_BEARER_TOKEN_BEDROCK" \\`,
        `  -H 'Content-Type: application/json' \\`,
        `  --data-binary ${shellQuote(text)}`,
      ];
      if (kind === "cli") lines.unshift("# The AWS CLI has no command for the OpenAI-compatible endpoint; use curl:");
      return lines.join("\n") + "\n";
    }
  }
}

/** The path of the same call against another model (replay with any model ID). */
export function pathFor(call: CallDetails, modelId: string): string {
  if (call.service !== "bedrock-runtime" || modelId === call.modelId) return call.path;
  const parts = call.path.split("/");
  if (parts[1] === "model" && parts.length > 2) {
    parts[2] = encodeURIComponent(modelId);
    return parts.join("/");
  }
  return call.path;
}
