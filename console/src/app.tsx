import { useEffect, useRef, useState } from "preact/hooks";
import {
  ApiError,
  CONSOLE_API,
  authHeaders,
  errorMessage,
  errorType,
  getToken,
  readSse,
  request,
  setToken,
} from "./api";
import { mergeRows } from "./calls";
import { CallPage } from "./pages/call";
import { CallsPage } from "./pages/calls";
import { GuardrailsPage } from "./pages/guardrails";
import { PlaygroundPage } from "./pages/playground";
import { ResourcesPage } from "./pages/resources";
import { RulesPage } from "./pages/rules";
import { useRoute } from "./router";
import type { CallRow } from "./types";

const PAGES: Array<[string, string]> = [
  ["calls", "Live calls"],
  ["playground", "Playground"],
  ["rules", "Rules"],
  ["guardrails", "Guardrails"],
  ["resources", "Resources"],
];

export interface LiveCalls {
  rows: CallRow[];
  capacity: number;
  connected: boolean;
  error: string | null;
  clear: () => Promise<void>;
}

/** The recent calls, kept up to date from the live feed (re-fetching what a gap missed). */
function useLiveCalls(token: string): LiveCalls {
  const [rows, setRows] = useState<CallRow[]>([]);
  const [capacity, setCapacity] = useState(1000);
  const [connected, setConnected] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const rowsRef = useRef<CallRow[]>([]);
  const pending = useRef<CallRow[]>([]);
  const timer = useRef<number | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    let capacityNow = 1000;
    const flush = () => {
      timer.current = null;
      rowsRef.current = mergeRows(rowsRef.current, pending.current, capacityNow);
      pending.current = [];
      setRows(rowsRef.current);
    };
    const queue = (incoming: CallRow[]) => {
      pending.current.push(...incoming);
      if (timer.current === null) timer.current = window.setTimeout(flush, 50);
    };
    const catchUp = async () => {
      const after = rowsRef.current.length ? rowsRef.current[0].seq : 0;
      const page = await request<{ calls: CallRow[]; capacity: number }>(
        "GET",
        `${CONSOLE_API}/calls?after=${after}`,
      );
      capacityNow = page.capacity;
      setCapacity(page.capacity);
      queue(page.calls);
    };
    const run = async () => {
      while (!abort.signal.aborted) {
        try {
          const response = await fetch(`${CONSOLE_API}/feed`, {
            headers: authHeaders(),
            signal: abort.signal,
          });
          if (!response.ok) {
            const text = await response.text();
            let data: unknown = text;
            try {
              data = JSON.parse(text);
            } catch {
              // not JSON: the text itself
            }
            const hint = response.status === 403 ? " (auth mode verify: enter an API key)" : "";
            throw new ApiError(response.status, errorMessage(data, response.statusText) + hint, errorType(response));
          }
          setConnected(true);
          setError(null);
          await catchUp();
          let lastSeq = rowsRef.current.length ? rowsRef.current[0].seq : 0;
          await readSse(
            response,
            (event, data) => {
              if (event !== "call") return;
              const row = JSON.parse(data) as CallRow;
              if (lastSeq && row.seq > lastSeq + 1) void catchUp(); // the feed skipped some
              lastSeq = Math.max(lastSeq, row.seq);
              queue([row]);
            },
            abort.signal,
          );
        } catch (err) {
          if (abort.signal.aborted) return;
          setError(err instanceof Error ? err.message : String(err));
        }
        setConnected(false);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    };
    void run();
    return () => abort.abort();
  }, [token]);

  const clear = async () => {
    await request("DELETE", `${CONSOLE_API}/calls`);
    rowsRef.current = [];
    setRows([]);
  };
  return { rows, capacity, connected, error, clear };
}

function TokenForm(props: { token: string; onChange: (token: string) => void }) {
  const [value, setValue] = useState(props.token);
  return (
    <form
      class="token"
      onSubmit={(event) => {
        event.preventDefault();
        props.onChange(value.trim());
      }}
    >
      <label>
        API key{" "}
        <input
          type="password"
          autocomplete="off"
          value={value}
          placeholder="needed in auth mode verify"
          onInput={(event) => setValue((event.target as HTMLInputElement).value)}
        />
      </label>{" "}
      <button type="submit">Use</button>
    </form>
  );
}

export function App() {
  const route = useRoute();
  const [token, setTokenState] = useState(getToken());
  const live = useLiveCalls(token);
  useEffect(() => {
    const title = PAGES.find(([page]) => page === route.page)?.[1] ?? "Call";
    document.title = `${title} · Outcrop console`;
  }, [route.page]);
  let page;
  switch (route.page) {
    case "call":
      page = <CallPage id={route.arg} />;
      break;
    case "playground":
      page = <PlaygroundPage />;
      break;
    case "rules":
      page = <RulesPage />;
      break;
    case "guardrails":
      page = <GuardrailsPage />;
      break;
    case "resources":
      page = <ResourcesPage live={live} />;
      break;
    default:
      page = <CallsPage live={live} />;
  }
  return (
    <>
      <a class="skip" href="#main" onClick={(event) => {
        event.preventDefault();
        document.getElementById("main")?.focus();
      }}>Skip to content</a>
      <header>
        <strong class="brand">Outcrop console</strong>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map(([name, label]) => (
              <li key={name}>
                <a href={`#/${name}`} aria-current={route.page === name ? "page" : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="feed" role="status">
          {live.connected ? "● Live" : "○ Offline"}
          {live.error ? ` (${live.error})` : ""}
        </span>
        <TokenForm
          token={token}
          onChange={(value) => {
            setToken(value);
            setTokenState(value);
          }}
        />
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}
