import { useEffect, useState } from "preact/hooks";
import { CONSOLE_API, request } from "../api";
import { clock, ms, num, pretty } from "../format";
import { invoke, type InvokeResult } from "../invoke";
import { type SnippetKind, pathFor, snippet, snippetKinds } from "../snippets";
import type { Assembled, CallDetails } from "../types";
import { base64Bytes, wavFromPcm } from "../wav";

function Section(props: { title: string; children: preact.ComponentChildren; id?: string }) {
  return (
    <section class="panel" aria-labelledby={`${props.id ?? props.title}-h`}>
      <h2 id={`${props.id ?? props.title}-h`}>{props.title}</h2>
      {props.children}
    </section>
  );
}

export function CallPage(props: { id: string }) {
  const [call, setCall] = useState<CallDetails | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setCall(null);
    setError(null);
    request<CallDetails>("GET", `${CONSOLE_API}/call?id=${encodeURIComponent(props.id)}`)
      .then(setCall)
      .catch((err: Error) => setError(err.message));
  }, [props.id]);
  if (error) return <p role="alert">{error}</p>;
  if (!call) return <p>Loading call {props.id}…</p>;
  const a = call.assembled;
  return (
    <article aria-labelledby="call-title">
      <p><a href="#/calls">← Live calls</a></p>
      <h1 id="call-title">
        {call.operation} <span class="model">{call.modelId}</span>
      </h1>
      <dl class="facts">
        <dt>Request ID</dt><dd data-testid="call-id">{call.id}</dd>
        <dt>Time</dt><dd>{clock(call.time)}</dd>
        <dt>Status</dt><dd data-testid="call-status">{call.errorCode ? `✗ ${call.status} ${call.errorCode}: ${call.errorMessage ?? ""}` : `✓ ${call.status}`}</dd>
        <dt>Resolved model</dt><dd>{call.resolvedModel ?? "–"}</dd>
        <dt>Engine</dt><dd>{call.engine ?? "–"}</dd>
        <dt>Principal</dt><dd>{call.principal || "–"}</dd>
        <dt>TTFT</dt><dd>{ms(call.ttftMs)}</dd>
        <dt>Duration</dt><dd>{ms(call.durationMs)}</dd>
        <dt>Tokens in / out</dt><dd>{num(call.inputTokens)} / {num(call.outputTokens)}</dd>
        <dt>Tokens/s</dt><dd>{num(call.tokensPerS)}</dd>
        <dt>Matched rules</dt><dd data-testid="call-rules">{call.rules.length ? call.rules.join(", ") : "none"}</dd>
        {call.truncated && (<><dt>Recording</dt><dd>truncated ([console] max_call_bytes)</dd></>)}
      </dl>
      <Section title="Assembled answer" id="assembled">
        <h3>Text</h3>
        <pre class="text" data-testid="assembled-text">{a.text || "(none)"}</pre>
        {a.reasoning && (<><h3>Reasoning</h3><pre class="text">{a.reasoning}</pre></>)}
        {a.toolCalls.length > 0 && (<><h3>Tool calls</h3><pre>{pretty(a.toolCalls)}</pre></>)}
        <h3>Stop reason</h3><p>{a.stopReason ?? "–"}</p>
        <h3>Usage</h3><pre>{a.usage ? pretty(a.usage) : "–"}</pre>
        {a.metrics && (<><h3>Metrics</h3><pre>{pretty(a.metrics)}</pre></>)}
        {a.guardrailTrace != null && (<><h3>Guardrail trace</h3><pre data-testid="guardrail-trace">{pretty(a.guardrailTrace)}</pre></>)}
      </Section>
      {a.speech && <Speech speech={a.speech} />}
      {call.streaming && (
        <Section title={`Events (${call.events.length})`} id="events">
          <ol class="timeline" data-testid="events">
            {call.events.map((event, index) => (
              <li key={index}>
                <span class="offset">+{event.offsetMs} ms</span> <strong>{event.type}</strong>
                <pre>{pretty(event.event)}</pre>
              </li>
            ))}
          </ol>
        </Section>
      )}
      <Actions call={call} />
      <Section title="Request" id="request">
        <p><code>{call.method} {call.path}{call.query ? `?${call.query}` : ""}</code></p>
        <table class="headers">
          <caption>Headers (credentials redacted)</caption>
          <tbody>
            {call.request.headers.map(([name, value], index) => (
              <tr key={index}><th scope="row">{name}</th><td>{value}</td></tr>
            ))}
          </tbody>
        </table>
        <h3>Body</h3>
        <pre data-testid="request-body">{pretty(call.request.body)}</pre>
      </Section>
      {!call.streaming && call.response != null && (
        <Section title="Response body" id="response">
          <pre>{pretty(call.response)}</pre>
        </Section>
      )}
    </article>
  );
}

function Speech(props: { speech: NonNullable<Assembled["speech"]> }) {
  const { transcript, audio } = props.speech;
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!audio) return;
    const wav = wavFromPcm(base64Bytes(audio.pcmBase64), audio.sampleRateHertz);
    const made = URL.createObjectURL(new Blob([wav], { type: "audio/wav" }));
    setUrl(made);
    return () => URL.revokeObjectURL(made);
  }, [audio]);
  return (
    <Section title="Speech session" id="speech">
      <h3>Transcript</h3>
      <ol class="messages" data-testid="transcript">
        {transcript.map((line, i) => (
          <li key={i}><strong>{line.role ?? "?"}:</strong> {line.text}</li>
        ))}
      </ol>
      {audio && url && (
        <>
          <h3>Output audio</h3>
          <audio controls src={url} aria-label="The session's output audio" />
        </>
      )}
    </Section>
  );
}

function Actions(props: { call: CallDetails }) {
  const { call } = props;
  const [model, setModel] = useState(call.modelId);
  const [replay, setReplay] = useState<InvokeResult | null>(null);
  const [busy, setBusy] = useState(false);
  const [kind, setKind] = useState<SnippetKind>("boto3");
  const [notice, setNotice] = useState<string | null>(null);
  const endpoint = location.origin;
  const code = snippet(call, kind, endpoint);
  const ruleModel = call.resolvedModel ?? call.modelId;

  const doReplay = async () => {
    setBusy(true);
    setReplay(null);
    try {
      const body = typeof call.request.body === "string" ? call.request.body : JSON.stringify(call.request.body);
      setReplay(await invoke(call.method, pathFor(call, model) + (call.query ? `?${call.query}` : ""), body));
    } catch (err) {
      setNotice(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  const addRule = async (kind: "faults" | "responses") => {
    const rule =
      kind === "faults"
        ? { model: ruleModel, operation: call.operation, action: "error", error: call.errorCode ?? "ThrottlingException", message: call.errorMessage ?? "Rate exceeded (fault rule made in the console)", times: 1 }
        : { model: ruleModel, operation: call.operation, text: call.assembled.text || "Scripted answer.", times: 1 };
    try {
      const made = await request<{ id: string }>("POST", `/_outcrop/${kind}`, rule);
      setNotice(`Added ${kind === "faults" ? "fault rule" : "scripted response"} ${made.id} (see Rules).`);
    } catch (err) {
      setNotice(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <section class="panel" aria-labelledby="actions-h">
      <h2 id="actions-h">Actions</h2>
      <form class="row" onSubmit={(event) => { event.preventDefault(); void doReplay(); }}>
        <label>
          Replay with model ID{" "}
          <input name="replay-model" value={model} size={40} onInput={(event) => setModel((event.target as HTMLInputElement).value)} />
        </label>{" "}
        <button type="submit" disabled={busy}>Replay</button>
      </form>
      {replay && (
        <p role="status" data-testid="replay-result">
          Replay: {replay.errorType ? `✗ ${replay.status} ${replay.errorType}: ${replay.message ?? ""}` : `✓ ${replay.status}`}
          {replay.requestId && (<> — <a href={`#/call/${replay.requestId}`}>open the replayed call</a></>)}
        </p>
      )}
      <div class="row">
        <button type="button" onClick={() => void addRule("responses")}>Make a scripted response from this answer</button>{" "}
        <button type="button" onClick={() => void addRule("faults")}>Make a fault rule for this model</button>
      </div>
      {notice && <p role="status">{notice}</p>}
      <fieldset>
        <legend>Copy as</legend>
        {snippetKinds(call).map(([value, label]) => (
          <label key={value} class="radio">
            <input type="radio" name="snippet" value={value} checked={kind === value} onChange={() => setKind(value)} /> {label}
          </label>
        ))}
      </fieldset>
      <pre class="snippet" data-testid="snippet">{code}</pre>
      <button type="button" onClick={() => void navigator.clipboard?.writeText(code).then(() => setNotice("Copied."))}>
        Copy to clipboard
      </button>
    </section>
  );
}
