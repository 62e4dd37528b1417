import { useEffect, useState } from "preact/hooks";
import type { LiveCalls } from "../app";
import { CONSOLE_API, request } from "../api";
import { pretty } from "../format";
import { QUOTAS_API, countCaption, counterKey, level, ruleSummary, streams } from "../quotas";
import type { QuotaCounters } from "../quotas";
import type { CallRow } from "../types";

interface Overview {
  health: { status: string; engines: Record<string, { ready: boolean; state: string; detail: string }> };
  queueDepth: Record<string, number>;
  authMode: string;
  region: string;
  faultsApi: boolean;
  responsesApi: boolean;
  quotas: Array<Record<string, unknown>>;
  console: { calls: number; capacity: number; feeds: number };
}

/** Tokens per second of an engine's latest calls, oldest first (for its chart). */
export function throughput(rows: CallRow[], engine: string, count = 60): number[] {
  const points: number[] = [];
  for (const row of rows) {
    if (row.engine === engine && row.tokensPerS != null) points.push(row.tokensPerS);
    if (points.length >= count) break;
  }
  return points.reverse();
}

function Chart(props: { points: number[]; label: string }) {
  const { points } = props;
  if (points.length < 2) return <p>{points.length ? `${points[0]} tokens/s` : "No calls with token counts yet."}</p>;
  const max = Math.max(...points, 1);
  const path = points.map((p, i) => `${(i / (points.length - 1)) * 300},${60 - (p / max) * 56}`).join(" ");
  const mean = points.reduce((a, b) => a + b, 0) / points.length;
  return (
    <figure>
      <svg viewBox="0 0 300 62" width="300" height="62" role="img" aria-label={props.label}>
        <polyline points={path} fill="none" stroke="currentColor" stroke-width="2" />
      </svg>
      <figcaption>
        Last {points.length} calls: mean {mean.toFixed(1)}, max {max.toFixed(1)} tokens/s
      </figcaption>
    </figure>
  );
}

export function ResourcesPage(props: { live: LiveCalls }) {
  const [overview, setOverview] = useState<Overview | null>(null);
  const [endpoints, setEndpoints] = useState<unknown>(null);
  const [quotas, setQuotas] = useState<QuotaCounters | null>(null);
  const [quotaError, setQuotaError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const load = () => {
      request<Overview>("GET", `${CONSOLE_API}/overview`).then(setOverview).catch((err: Error) => setError(err.message));
      request<unknown>("GET", "/_outcrop/endpoints").then(setEndpoints).catch(() => setEndpoints(null));
      request<QuotaCounters>("GET", QUOTAS_API)
        .then((q) => {
          setQuotas(q);
          setQuotaError(null);
        })
        .catch((err: Error) => setQuotaError(err.message));
    };
    load();
    const timer = setInterval(load, 2000);
    return () => clearInterval(timer);
  }, []);
  if (error) return <p role="alert">{error}</p>;
  if (!overview) return <p>Loading…</p>;
  return (
    <section aria-labelledby="res-title">
      <h1 id="res-title">Resources</h1>
      <p>
        Server {overview.health.status}; auth mode {overview.authMode}; region {overview.region}; fault API{" "}
        {overview.faultsApi ? "on" : "off"}, scripted responses API {overview.responsesApi ? "on" : "off"}; {overview.console.calls} of{" "}
        {overview.console.capacity} calls recorded.
      </p>
      <section class="panel" aria-labelledby="engines-h">
        <h2 id="engines-h">Engines</h2>
        <table data-testid="engines-table">
          <thead><tr><th scope="col">Engine</th><th scope="col">Health</th><th scope="col">Queue depth</th><th scope="col">Throughput</th></tr></thead>
          <tbody>
            {Object.entries(overview.health.engines).map(([name, health]) => (
              <tr key={name}>
                <td>{name}</td>
                <td>{health.ready ? "✓ ready" : `✗ ${health.state}`} {health.detail}</td>
                <td>{overview.queueDepth[name] ?? 0}</td>
                <td><Chart points={throughput(props.live.rows, name)} label={`Tokens per second of engine ${name}`} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section class="panel" aria-labelledby="sm-h">
        <h2 id="sm-h">SageMaker endpoints</h2>
        <pre>{endpoints ? pretty(endpoints) : "–"}</pre>
      </section>
      <section class="panel" aria-labelledby="quota-h">
        <h2 id="quota-h">Quotas</h2>
        {!overview.quotas.length ? (
          <p>No quotas configured ([[quotas]]).</p>
        ) : quotaError ? (
          <p role="alert">Counters unavailable: {quotaError}</p>
        ) : !quotas ? (
          <p>Loading counters…</p>
        ) : (
          <>
            <p>Counters {quotas.backend === "redis" ? "shared by the fleet (Redis)" : "of this server"}, busiest first; refreshed every 2 s.</p>
            {quotas.quotas.map((view, i) => (
              <figure key={i}>
                <figcaption>
                  Quota {i + 1}: {ruleSummary(view.rule)} — {countCaption(view)}
                </figcaption>
                <table data-testid={`quota-table-${i}`}>
                  <thead>
                    <tr><th scope="col">Counter</th><th scope="col">Requests left</th><th scope="col">Tokens left</th><th scope="col">Streams in flight</th></tr>
                  </thead>
                  <tbody>
                    {view.counters.length ? (
                      view.counters.map((c) => (
                        <tr key={counterKey(c)} data-testid="quota-counter">
                          <td>{counterKey(c)}</td>
                          <td data-testid="requests-left">{level(c.requestsLeft, c.requestsPerMinute)}</td>
                          <td data-testid="tokens-left">{level(c.tokensLeft, c.tokensPerMinute)}</td>
                          <td data-testid="streams-in-flight">{streams(c)}</td>
                        </tr>
                      ))
                    ) : (
                      <tr><td colSpan={4}>No calls counted yet.</td></tr>
                    )}
                  </tbody>
                </table>
              </figure>
            ))}
          </>
        )}
      </section>
    </section>
  );
}
