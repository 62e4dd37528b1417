import { useRef, useState } from "preact/hooks";
import { type Message, type PlaygroundForm, converseBody } from "../converse";
import { pretty } from "../format";
import { invoke } from "../invoke";

const EMPTY: PlaygroundForm = {
  system: "",
  maxTokens: "256",
  temperature: "",
  topP: "",
  tools: "",
  schema: "",
  guardrailId: "",
  guardrailVersion: "DRAFT",
};

function Field(props: { label: string; name: keyof PlaygroundForm; form: PlaygroundForm; set: (f: PlaygroundForm) => void; area?: boolean; placeholder?: string }) {
  const onInput = (event: Event) =>
    props.set({ ...props.form, [props.name]: (event.target as HTMLInputElement).value });
  return (
    <label class="field">
      <span>{props.label}</span>
      {props.area ? (
        <textarea name={props.name} rows={3} value={props.form[props.name]} placeholder={props.placeholder} onInput={onInput} />
      ) : (
        <input name={props.name} value={props.form[props.name]} placeholder={props.placeholder} onInput={onInput} />
      )}
    </label>
  );
}

export function PlaygroundPage() {
  const [modelId, setModelId] = useState("anthropic.claude-3-haiku-20240307-v1:0");
  const [form, setForm] = useState<PlaygroundForm>(EMPTY);
  const [messages, setMessages] = useState<Message[]>([]);
  const [prompt, setPrompt] = useState("");
  const [answer, setAnswer] = useState<string | null>(null);
  const [usage, setUsage] = useState<unknown>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [requestId, setRequestId] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);

  const send = async () => {
    if (!prompt.trim()) return;
    const history: Message[] = [...messages, { role: "user", text: prompt }];
    let body;
    try {
      body = converseBody(form, history);
    } catch (err) {
      setStatus((err as Error).message);
      return;
    }
    setMessages(history);
    setPrompt("");
    setAnswer("");
    setUsage(null);
    setStatus("Streaming…");
    abort.current = new AbortController();
    let text = "";
    try {
      const result = await invoke(
        "POST",
        `/model/${encodeURIComponent(modelId)}/converse-stream`,
        JSON.stringify(body),
        (event) => {
          const delta = (event.contentBlockDelta as { delta?: { text?: string; toolUse?: { input?: string } } } | undefined)?.delta;
          if (delta?.text) text += delta.text;
          if (delta?.toolUse?.input) text += delta.toolUse.input;
          if (event.metadata) setUsage((event.metadata as { usage?: unknown }).usage ?? null);
          if (event.messageStop) setStatus(`Stop reason: ${(event.messageStop as { stopReason?: string }).stopReason}`);
          setAnswer(text);
        },
        abort.current.signal,
      );
      setRequestId(result.requestId);
      if (result.errorType) setStatus(`✗ ${result.status} ${result.errorType}: ${result.message ?? ""}`);
      setMessages([...history, { role: "assistant", text }]);
      setAnswer(null);
    } catch (err) {
      setStatus((err as Error).message);
    } finally {
      abort.current = null;
    }
  };

  return (
    <section aria-labelledby="pg-title">
      <h1 id="pg-title">Playground</h1>
      <p>Chats through ConverseStream on this server (as any SDK would); each turn is a call in the live table.</p>
      <div class="columns">
        <form class="settings" onSubmit={(event) => event.preventDefault()}>
          <label class="field">
            <span>Model ID</span>
            <input name="modelId" value={modelId} onInput={(event) => setModelId((event.target as HTMLInputElement).value)} />
          </label>
          <Field label="System prompt" name="system" form={form} set={setForm} area />
          <Field label="Max tokens" name="maxTokens" form={form} set={setForm} />
          <Field label="Temperature" name="temperature" form={form} set={setForm} />
          <Field label="Top P" name="topP" form={form} set={setForm} />
          <Field label="Tools (JSON: toolConfig or list of toolSpec)" name="tools" form={form} set={setForm} area />
          <Field label="Output schema (JSON Schema)" name="schema" form={form} set={setForm} area />
          <Field label="Guardrail ID" name="guardrailId" form={form} set={setForm} />
          <Field label="Guardrail version" name="guardrailVersion" form={form} set={setForm} />
          <button type="button" onClick={() => { setMessages([]); setStatus(null); setUsage(null); }}>New chat</button>
        </form>
        <div class="chat">
          <ol class="messages" aria-label="Conversation" data-testid="messages">
            {messages.map((m, i) => (
              <li key={i} class={m.role}><strong>{m.role}:</strong> <span class="text">{m.text}</span></li>
            ))}
            {answer !== null && (
              <li class="assistant" aria-live="polite"><strong>assistant:</strong> <span class="text" data-testid="streaming">{answer}</span></li>
            )}
          </ol>
          <form class="row" onSubmit={(event) => { event.preventDefault(); void send(); }}>
            <label class="grow">
              <span class="visually-hidden">Message</span>
              <textarea name="prompt" rows={2} value={prompt} placeholder="Say something (Ctrl+Enter sends)"
                onInput={(event) => setPrompt((event.target as HTMLTextAreaElement).value)}
                onKeyDown={(event) => { if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); void send(); } }} />
            </label>
            <button type="submit" disabled={abort.current !== null}>Send</button>
            <button type="button" onClick={() => abort.current?.abort()}>Stop</button>
          </form>
          {status && <p role="status" data-testid="pg-status">{status}</p>}
          {usage != null && (<><h2>Usage</h2><pre data-testid="pg-usage">{pretty(usage)}</pre></>)}
          {requestId && <p><a href={`#/call/${requestId}`}>Open this call</a></p>}
        </div>
      </div>
    </section>
  );
}
