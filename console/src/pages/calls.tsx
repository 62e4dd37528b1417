import { useMemo, useRef, useState } from "preact/hooks";
import type { LiveCalls } from "../app";
import { type CallFilter, NO_FILTER, applyFilter, visibleWindow } from "../calls";
import { clock, ms, num } from "../format";

const ROW_HEIGHT = 30;

export function CallsPage(props: { live: LiveCalls }) {
  const { rows, capacity } = props.live;
  const [filter, setFilter] = useState<CallFilter>(NO_FILTER);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const scroller = useRef<HTMLDivElement>(null);
  const shown = useMemo(() => applyFilter(rows, filter), [rows, filter]);
  const operations = useMemo(
    () => [...new Set(rows.map((row) => row.operation))].sort(),
    [rows],
  );
  const { start, end } = visibleWindow(shown.length, scrollTop, viewport, ROW_HEIGHT);
  const onScroll = () => {
    const element = scroller.current;
    if (!element) return;
    setScrollTop(element.scrollTop);
    setViewport(element.clientHeight);
  };
  return (
    <section aria-labelledby="calls-title">
      <h1 id="calls-title">Live calls</h1>
      <form class="filters" role="search" onSubmit={(event) => event.preventDefault()}>
        <label>
          Search{" "}
          <input
            type="search"
            name="search"
            value={filter.text}
            placeholder="model, operation, error, principal, id"
            onInput={(event) => setFilter({ ...filter, text: (event.target as HTMLInputElement).value })}
          />
        </label>
        <label>
          Outcome{" "}
          <select
            name="outcome"
            value={filter.outcome}
            onChange={(event) =>
              setFilter({ ...filter, outcome: (event.target as HTMLSelectElement).value as CallFilter["outcome"] })
            }
          >
            <option value="all">all</option>
            <option value="ok">succeeded</option>
            <option value="error">failed</option>
          </select>
        </label>
        <label>
          Operation{" "}
          <select
            name="operation"
            value={filter.operation}
            onChange={(event) => setFilter({ ...filter, operation: (event.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {operations.map((op) => (
              <option key={op} value={op}>{op}</option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => void props.live.clear()}>Clear recorded calls</button>
      </form>
      <p class="count" aria-live="polite" data-testid="call-count">
        {shown.length} of {rows.length} calls shown (the server keeps the last {capacity})
      </p>
      <div
        class="table-scroll"
        ref={scroller}
        onScroll={onScroll}
        tabIndex={0}
        aria-label="Calls, newest first"
        data-testid="calls-scroll"
      >
        <table class="calls" aria-rowcount={shown.length + 1}>
          <colgroup>
            {["time", "op", "model", "model", "engine", "principal", "status", "n", "n", "n", "n", "n"].map((kind, i) => (
              <col key={i} class={`c-${kind}`} />
            ))}
          </colgroup>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Operation</th>
              <th scope="col">Model ID</th>
              <th scope="col">Resolved</th>
              <th scope="col">Engine</th>
              <th scope="col">Principal</th>
              <th scope="col">Status</th>
              <th scope="col">TTFT</th>
              <th scope="col">In</th>
              <th scope="col">Out</th>
              <th scope="col">Tok/s</th>
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {start > 0 && <tr aria-hidden="true" style={{ height: `${start * ROW_HEIGHT}px` }} />}
            {shown.slice(start, end).map((row, i) => (
              <tr key={row.seq} class={row.errorCode ? "failed" : undefined} aria-rowindex={start + i + 2}>
                <td><a href={`#/call/${encodeURIComponent(row.id)}`}>{clock(row.time)}</a></td>
                <td>{row.operation}</td>
                <td class="model">{row.modelId}</td>
                <td class="model">{row.resolvedModel ?? "–"}</td>
                <td>{row.engine ?? "–"}</td>
                <td class="model">{row.principal || "–"}</td>
                <td>{row.errorCode ? `✗ ${row.status} ${row.errorCode}` : `✓ ${row.status}`}{row.rules.length ? ` (${row.rules.join(", ")})` : ""}</td>
                <td>{ms(row.ttftMs)}</td>
                <td>{num(row.inputTokens)}</td>
                <td>{num(row.outputTokens)}</td>
                <td>{num(row.tokensPerS)}</td>
                <td>{ms(row.durationMs)}</td>
              </tr>
            ))}
            {end < shown.length && (
              <tr aria-hidden="true" style={{ height: `${(shown.length - end) * ROW_HEIGHT}px` }} />
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
