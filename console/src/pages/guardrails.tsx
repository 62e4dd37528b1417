import { useEffect, useState } from "preact/hooks";
import { request } from "../api";
import { pretty } from "../format";

interface Summary {
  id: string;
  name: string;
  status: string;
  version: string;
  updatedAt?: string;
}

export function guardrailBody(name: string, words: string, message: string): Record<string, unknown> {
  const list = words.split(/[,\n]/).map((w) => w.trim()).filter(Boolean);
  const body: Record<string, unknown> = {
    name,
    blockedInputMessaging: message,
    blockedOutputsMessaging: message,
  };
  if (list.length) body.wordPolicyConfig = { wordsConfig: list.map((text) => ({ text })) };
  return body;
}

/** GetGuardrail's answer turned into an UpdateGuardrail body (what can be edited). */
export function updateBody(draft: Record<string, unknown>): Record<string, unknown> {
  const keep = ["name", "description", "blockedInputMessaging", "blockedOutputsMessaging"];
  const body: Record<string, unknown> = {};
  for (const key of keep) if (draft[key] != null) body[key] = draft[key];
  const words = draft.wordPolicy as { words?: Array<{ text: string }>; managedWordLists?: Array<{ type: string }> } | undefined;
  if (words) {
    body.wordPolicyConfig = {
      ...(words.words?.length ? { wordsConfig: words.words.map((w) => ({ text: w.text })) } : {}),
      ...(words.managedWordLists?.length ? { managedWordListsConfig: words.managedWordLists.map((w) => ({ type: w.type })) } : {}),
    };
  }
  const topics = draft.topicPolicy as { topics?: Array<Record<string, unknown>> } | undefined;
  if (topics?.topics?.length) {
    body.topicPolicyConfig = { topicsConfig: topics.topics.map(({ name, definition, examples, type }) => ({ name, definition, examples, type })) };
  }
  const content = draft.contentPolicy as { filters?: Array<Record<string, unknown>> } | undefined;
  if (content?.filters?.length) {
    body.contentPolicyConfig = { filtersConfig: content.filters.map(({ type, inputStrength, outputStrength }) => ({ type, inputStrength, outputStrength })) };
  }
  const pii = draft.sensitiveInformationPolicy as { piiEntities?: Array<Record<string, unknown>>; regexes?: Array<Record<string, unknown>> } | undefined;
  if (pii && (pii.piiEntities?.length || pii.regexes?.length)) {
    body.sensitiveInformationPolicyConfig = {
      ...(pii.piiEntities?.length ? { piiEntitiesConfig: pii.piiEntities.map(({ type, action }) => ({ type, action })) } : {}),
      ...(pii.regexes?.length ? { regexesConfig: pii.regexes.map(({ name, pattern, action, description }) => ({ name, pattern, action, description })) } : {}),
    };
  }
  return body;
}

function Detail(props: { id: string; onChanged: () => void }) {
  const [draft, setDraft] = useState<Record<string, unknown> | null>(null);
  const [text, setText] = useState("");
  const [version, setVersion] = useState("DRAFT");
  const [sample, setSample] = useState("");
  const [source, setSource] = useState("INPUT");
  const [result, setResult] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const path = `/guardrails/${encodeURIComponent(props.id)}`;
  const load = async () => {
    try {
      const got = await request<Record<string, unknown>>("GET", `${path}?guardrailVersion=DRAFT`);
      setDraft(got);
      setText(pretty(updateBody(got)));
    } catch (err) {
      setMessage((err as Error).message);
    }
  };
  useEffect(() => void load(), [props.id]);
  const act = async (what: () => Promise<string>) => {
    try {
      setMessage(await what());
    } catch (err) {
      setMessage((err as Error).message);
    }
    props.onChanged();
  };
  return (
    <section class="panel" aria-labelledby="gr-detail-h">
      <h2 id="gr-detail-h">Guardrail {props.id}</h2>
      {draft && <p>Status {String(draft.status)}, draft updated {String(draft.updatedAt ?? "")}</p>}
      <form onSubmit={(event) => { event.preventDefault(); void act(async () => { await request("PUT", path, JSON.parse(text)); await load(); return "Draft updated."; }); }}>
        <label class="field">
          <span>Draft (UpdateGuardrail body, JSON)</span>
          <textarea name="draft" rows={10} value={text} onInput={(event) => setText((event.target as HTMLTextAreaElement).value)} />
        </label>
        <button type="submit">Save draft</button>{" "}
        <button type="button" onClick={() => void act(async () => {
          const made = await request<{ version: string }>("POST", path, { description: "from the console" });
          setVersion(made.version);
          return `Created version ${made.version}.`;
        })}>Create version</button>{" "}
        <button type="button" onClick={() => void act(async () => { await request("DELETE", path); return "Deleted."; })}>Delete guardrail</button>
      </form>
      <form onSubmit={(event) => {
        event.preventDefault();
        void act(async () => {
          const answer = await request<{ action: string }>(
            "POST",
            `/guardrail/${encodeURIComponent(props.id)}/version/${encodeURIComponent(version)}/apply`,
            { source, content: [{ text: { text: sample } }] },
          );
          setResult(answer);
          return `ApplyGuardrail: ${answer.action}`;
        });
      }}>
        <h3>Test text (ApplyGuardrail)</h3>
        <label class="field"><span>Text</span>
          <textarea name="sample" rows={3} value={sample} onInput={(event) => setSample((event.target as HTMLTextAreaElement).value)} />
        </label>
        <label>Version <input name="version" size={8} value={version} onInput={(event) => setVersion((event.target as HTMLInputElement).value)} /></label>{" "}
        <label>Source <select name="source" value={source} onChange={(event) => setSource((event.target as HTMLSelectElement).value)}>
          <option value="INPUT">INPUT</option><option value="OUTPUT">OUTPUT</option>
        </select></label>{" "}
        <button type="submit">Test</button>
      </form>
      {message && <p role="status" data-testid="gr-message">{message}</p>}
      {result != null && <pre data-testid="gr-result">{pretty(result)}</pre>}
    </section>
  );
}

export function GuardrailsPage() {
  const [list, setList] = useState<Summary[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [words, setWords] = useState("");
  const [blocked, setBlocked] = useState("Sorry, I can't help with that.");
  const [message, setMessage] = useState<string | null>(null);
  const load = () =>
    request<{ guardrails: Summary[] }>("GET", "/guardrails")
      .then((r) => setList(r.guardrails))
      .catch((err: Error) => setMessage(err.message));
  useEffect(() => void load(), []);
  const create = async () => {
    try {
      const made = await request<{ guardrailId: string }>("POST", "/guardrails", guardrailBody(name, words, blocked));
      setMessage(`Created guardrail ${made.guardrailId}.`);
      setSelected(made.guardrailId);
    } catch (err) {
      setMessage((err as Error).message);
    }
    await load();
  };
  return (
    <section aria-labelledby="gr-title">
      <h1 id="gr-title">Guardrails</h1>
      <p>Through Bedrock's guardrail operations on this server (CreateGuardrail, UpdateGuardrail, CreateGuardrailVersion, ApplyGuardrail).</p>
      <table data-testid="guardrails-table">
        <thead><tr><th scope="col">ID</th><th scope="col">Name</th><th scope="col">Version</th><th scope="col">Status</th><th scope="col"></th></tr></thead>
        <tbody>
          {list.map((g) => (
            <tr key={g.id}>
              <td>{g.id}</td><td>{g.name}</td><td>{g.version}</td><td>{g.status}</td>
              <td><button type="button" onClick={() => setSelected(g.id)}>Open {g.name}</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      {message && <p role="status" data-testid="gr-created">{message}</p>}
      {selected && <Detail id={selected} onChanged={() => void load()} />}
      <form class="panel" onSubmit={(event) => { event.preventDefault(); void create(); }}>
        <h2>New guardrail</h2>
        <label class="field"><span>Name</span><input name="gr-name" required value={name} onInput={(event) => setName((event.target as HTMLInputElement).value)} /></label>
        <label class="field"><span>Blocked words (comma or line separated)</span><textarea name="gr-words" rows={2} value={words} onInput={(event) => setWords((event.target as HTMLTextAreaElement).value)} /></label>
        <label class="field"><span>Blocked message</span><input name="gr-blocked" value={blocked} onInput={(event) => setBlocked((event.target as HTMLInputElement).value)} /></label>
        <button type="submit">Create guardrail</button>
      </form>
    </section>
  );
}
