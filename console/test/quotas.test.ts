import { describe, expect, it } from "vitest";
import { countCaption, counterKey, level, ruleSummary, streams } from "../src/quotas";
import type { QuotaCounter } from "../src/quotas";

function counter(extra: Partial<QuotaCounter> = {}): QuotaCounter {
  return {
    model: "anthropic.claude-3-haiku-20240307-v1:0", principal: null, requestsLeft: 57.6,
    requestsPerMinute: 60, tokensLeft: null, tokensPerMinute: null, streamsInFlight: 1,
    concurrentStreams: 4, ...extra,
  };
}

describe("quota counters", () => {
  it("shows whole units left of the per-minute quota, and – without one", () => {
    expect(level(57.6, 60)).toBe("57 of 60/min");
    expect(level(null, null)).toBe("–");
    expect(level(-12.5, 1000)).toBe("-13 of 1000/min"); // a bucket in deficit
  });
  it("shows streams in flight with the cap when there is one", () => {
    expect(streams(counter())).toBe("1 of 4");
    expect(streams(counter({ concurrentStreams: null, streamsInFlight: 0 }))).toBe("0");
  });
  it("names a counter by model and principal, or all matched calls", () => {
    expect(counterKey(counter({ principal: "arn:aws:iam::1:user/a" }))).toBe(
      "anthropic.claude-3-haiku-20240307-v1:0 · arn:aws:iam::1:user/a",
    );
    expect(counterKey(counter({ model: null }))).toBe("all matched calls");
  });
  it("summarises a rule and says when counters were left out", () => {
    expect(ruleSummary({ model: "anthropic.*", principal: "*", operation: "*", per: "model" })).toBe("model anthropic.*, per model");
    expect(countCaption({ rule: {}, counters: [counter()], total: 1, truncated: false })).toBe("1 counter");
    expect(countCaption({ rule: {}, counters: [counter()], total: 7, truncated: true })).toBe("the busiest 1 of 7 counters shown");
    expect(countCaption({ rule: {}, counters: [counter()], total: null, truncated: true })).toBe("the busiest 1 counters shown (more exist)");
  });
});
