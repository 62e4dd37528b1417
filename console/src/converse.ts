// The playground's ConverseStream request body, built from its form.

export interface PlaygroundForm {
  system: string;
  maxTokens: string;
  temperature: string;
  topP: string;
  tools: string;
  schema: string;
  guardrailId: string;
  guardrailVersion: string;
}

export interface Message {
  role: "user" | "assistant";
  text: string;
}

/** The request body, or an Error naming the field that does not parse. */
export function converseBody(form: PlaygroundForm, messages: Message[]): Record<string, unknown> {
  const body: Record<string, unknown> = {
    messages: messages.map((m) => ({ role: m.role, content: [{ text: m.text }] })),
  };
  if (form.system.trim()) body.system = [{ text: form.system }];
  const inference: Record<string, number> = {};
  for (const [key, raw] of [["maxTokens", form.maxTokens], ["temperature", form.temperature], ["topP", form.topP]] as const) {
    if (!raw.trim()) continue;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error(`${key} must be a number`);
    inference[key] = value;
  }
  if (Object.keys(inference).length) body.inferenceConfig = inference;
  if (form.tools.trim()) {
    let tools: unknown;
    try {
      tools = JSON.parse(form.tools);
    } catch {
      throw new Error("Tools must be JSON: a toolConfig object or a list of toolSpec objects");
    }
    body.toolConfig = Array.isArray(tools)
      ? { tools: tools.map((spec) => ("toolSpec" in (spec as object) ? spec : { toolSpec: spec })) }
      : tools;
  }
  if (form.schema.trim()) {
    let schema: unknown;
    try {
      schema = JSON.parse(form.schema);
    } catch {
      throw new Error("Output schema must be a JSON Schema object");
    }
    body.outputConfig = {
      textFormat: { type: "json_schema", structure: { jsonSchema: { schema: JSON.stringify(schema), name: "output" } } },
    };
  }
  if (form.guardrailId.trim()) {
    body.guardrailConfig = {
      guardrailIdentifier: form.guardrailId.trim(),
      guardrailVersion: form.guardrailVersion.trim() || "DRAFT",
      trace: "enabled",
    };
  }
  return body;
}
