import { useEffect, useState } from "preact/hooks";
import { request } from "../api";
import { pretty } from "../format";

type Kind = "faults" | "responses";
interface Rule {
  id: string;
  [key: string]: unknown;
}

const TEMPLATES: Record<Kind, Record<string, unknown>> = {
  faults: { model: "*", operation: "*", action: "error", error: "ThrottlingException", message: "Rate exceeded", times: 1 },
  responses: { model: "*", operation: "*", text: "Hello from a scripted response.", times: 1 },
};
const NOUN: Record<Kind, string> = { faults: "Fault rules", responses: "Scripted responses" };
const RUNTIME_KEYS = new Set(["matched", "fired", "created", "remaining", "exhausted"]);

/** The settings part of a described rule (what POST accepts). */
export function ruleSettings(rule: Rule): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rule)) {
    if (!RUNTIME_KEYS.has(key) && value !== null) settings[key] = value;
  }
  return settings;
}

function RuleList(props: { kind: Kind }) {
  const { kind } = props;
  const [rules, setRules] = useState<Rule[]>([]);
  const [editing, setEditing] = useState<string | null>(null);
  const [text, setText] = useState(pretty(TEMPLATES[kind]));
  const [message, setMessage] = useState<string | null>(null);
  const load = () =>
    request<{ rules: Rule[] }>("GET", `/_outcrop/${kind}`)
      .then((r) => setRules(r.rules))
      .catch((err: Error) => setMessage(err.message));
  useEffect(() => void load(), [kind]);

  const save = async () => {
    let settings: unknown;
    try {
      settings = JSON.parse(text);
    } catch {
      setMessage("The rule is not valid JSON.");
      return;
    }
    try {
      if (editing) await request("DELETE", `/_outcrop/${kind}/rule?id=${encodeURIComponent(editing)}`);
      const made = await request<Rule>("POST", `/_outcrop/${kind}`, settings);
      setMessage(`Saved ${made.id}.`);
      setEditing(null);
      setText(pretty(TEMPLATES[kind]));
    } catch (err) {
      setMessage((err as Error).message);
    }
    await load();
  };
  const remove = async (id: string) => {
    try {
      await request("DELETE", `/_outcrop/${kind}/rule?id=${encodeURIComponent(id)}`);
      setMessage(`Deleted ${id}.`);
    } catch (err) {
      setMessage((err as Error).message);
    }
    await load();
  };
  return (
    <section class="panel" aria-labelledby={`${kind}-h`}>
      <h2 id={`${kind}-h`}>{NOUN[kind]}</h2>
      {rules.length === 0 ? (
        <p>None in force.</p>
      ) : (
        <table data-testid={`${kind}-table`}>
          <thead><tr><th scope="col">ID</th><th scope="col">Rule</th><th scope="col">Matched / fired</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {rules.map((rule) => (
              <tr key={rule.id}>
                <td>{rule.id}</td>
                <td><pre>{JSON.stringify(ruleSettings(rule))}</pre></td>
                <td>{String(rule.matched ?? "–")} / {String(rule.fired ?? "–")}</td>
                <td>
                  <button type="button" onClick={() => { setEditing(rule.id); setText(pretty(ruleSettings(rule))); }}>Edit {rule.id}</button>{" "}
                  <button type="button" onClick={() => void remove(rule.id)}>Delete {rule.id}</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form onSubmit={(event) => { event.preventDefault(); void save(); }}>
        <label class="field">
          <span>{editing ? `Edit ${editing} (JSON)` : `New ${kind === "faults" ? "fault rule" : "scripted response"} (JSON)`}</span>
          <textarea name={`${kind}-json`} rows={8} value={text} onInput={(event) => setText((event.target as HTMLTextAreaElement).value)} />
        </label>
        <button type="submit">{editing ? "Save changes" : "Add"}</button>{" "}
        {editing && <button type="button" onClick={() => { setEditing(null); setText(pretty(TEMPLATES[kind])); }}>Cancel</button>}
      </form>
      {message && <p role="status">{message}</p>}
    </section>
  );
}

export function RulesPage() {
  return (
    <section aria-labelledby="rules-title">
      <h1 id="rules-title">Rules</h1>
      <p>Through the admin APIs <code>/_outcrop/faults</code> and <code>/_outcrop/responses</code> (docs/security.md).</p>
      <RuleList kind="faults" />
      <RuleList kind="responses" />
    </section>
  );
}
