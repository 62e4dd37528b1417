// Live quota counters (GET /_outcrop/quotas): each configured rule with its busiest counters.

export interface QuotaCounter {
  model: string | null;
  principal: string | null;
  requestsLeft: number | null;
  requestsPerMinute: number | null;
  tokensLeft: number | null;
  tokensPerMinute: number | null;
  streamsInFlight: number;
  concurrentStreams: number | null;
}

export interface QuotaRuleView {
  rule: Record<string, unknown>;
  counters: QuotaCounter[];
  total: number | null;
  truncated: boolean;
}

export interface QuotaCounters {
  backend: "process" | "redis";
  limit: number;
  quotas: QuotaRuleView[];
}

export const QUOTAS_API = "/_outcrop/quotas";

/** "left of per minute" for a bucket, "–" where the rule has none. */
export function level(left: number | null, perMinute: number | null): string {
  if (left == null || perMinute == null) return "–";
  return `${Math.floor(left)} of ${perMinute}/min`;
}

/** Streams in flight, with the rule's cap when it has one. */
export function streams(counter: QuotaCounter): string {
  return counter.concurrentStreams == null
    ? String(counter.streamsInFlight)
    : `${counter.streamsInFlight} of ${counter.concurrentStreams}`;
}

/** What the rule matches and counts by, in a few words. */
export function ruleSummary(rule: Record<string, unknown>): string {
  const parts = [`model ${String(rule.model ?? "*")}`];
  if (rule.principal && rule.principal !== "*") parts.push(`principal ${String(rule.principal)}`);
  if (rule.operation && rule.operation !== "*") parts.push(`operation ${String(rule.operation)}`);
  parts.push(`per ${String(rule.per ?? "model")}`);
  return parts.join(", ");
}

/** Whom a counter belongs to: its model and/or principal ("all matched calls" when neither). */
export function counterKey(counter: QuotaCounter): string {
  const parts = [counter.model, counter.principal].filter((p): p is string => !!p);
  return parts.length ? parts.join(" · ") : "all matched calls";
}

/** The caption under a rule's table: how many counters are shown of how many. */
export function countCaption(view: QuotaRuleView): string {
  const shown = view.counters.length;
  if (!view.truncated) return `${shown} counter${shown === 1 ? "" : "s"}`;
  return view.total == null ? `the busiest ${shown} counters shown (more exist)` : `the busiest ${shown} of ${view.total} counters shown`;
}
