import { describe, expect, it } from "vitest";
import { NO_FILTER, applyFilter, mergeRows, visibleWindow } from "../src/calls";
import type { CallRow } from "../src/types";

function row(seq: number, extra: Partial<CallRow> = {}): CallRow {
  return {
    seq, id: `id-${seq}`, time: 0, service: "bedrock-runtime", operation: "Converse",
    modelId: "amazon.nova-lite-v1:0", resolvedModel: null, engine: "default", principal: "",
    status: 200, errorCode: null, ttftMs: null, durationMs: 1, inputTokens: 1,
    outputTokens: 1, tokensPerS: null, streaming: false, rules: [], ...extra,
  };
}

describe("mergeRows", () => {
  it("keeps rows newest first, without duplicates, within the cap", () => {
    const rows = mergeRows([], [row(1), row(3), row(2)], 10);
    expect(rows.map((r) => r.seq)).toEqual([3, 2, 1]);
    const more = mergeRows(rows, [row(3), row(5), row(4)], 4);
    expect(more.map((r) => r.seq)).toEqual([5, 4, 3, 2]);
  });

  it("slots in late rows a gap re-fetch brought", () => {
    const rows = mergeRows(mergeRows([], [row(1), row(4)], 10), [row(2), row(3)], 10);
    expect(rows.map((r) => r.seq)).toEqual([4, 3, 2, 1]);
  });
});

describe("applyFilter", () => {
  const rows = [
    row(1),
    row(2, { errorCode: "ThrottlingException", status: 429, rules: ["fault:slow"] }),
    row(3, { operation: "ConverseStream", modelId: "anthropic.claude-3-haiku" }),
  ];
  it("filters by outcome, operation and text", () => {
    expect(applyFilter(rows, { ...NO_FILTER, outcome: "error" }).map((r) => r.seq)).toEqual([2]);
    expect(applyFilter(rows, { ...NO_FILTER, outcome: "ok" }).map((r) => r.seq)).toEqual([1, 3]);
    expect(applyFilter(rows, { ...NO_FILTER, operation: "ConverseStream" }).map((r) => r.seq)).toEqual([3]);
    expect(applyFilter(rows, { ...NO_FILTER, text: "CLAUDE" }).map((r) => r.seq)).toEqual([3]);
    expect(applyFilter(rows, { ...NO_FILTER, text: "fault:slow" }).map((r) => r.seq)).toEqual([2]);
    expect(applyFilter(rows, { ...NO_FILTER, text: "429" }).map((r) => r.seq)).toEqual([2]);
  });
  it("returns the same array when nothing filters", () => {
    expect(applyFilter(rows, NO_FILTER)).toBe(rows);
  });
});

describe("visibleWindow", () => {
  it("renders what is in view plus the overscan, never past the ends", () => {
    expect(visibleWindow(10_000, 0, 600, 30)).toEqual({ start: 0, end: 28 });
    expect(visibleWindow(10_000, 30 * 5000, 600, 30)).toEqual({ start: 4992, end: 5028 });
    expect(visibleWindow(10_000, 30 * 10_000, 600, 30)).toEqual({ start: 9992, end: 10_000 });
    expect(visibleWindow(3, 0, 600, 30)).toEqual({ start: 0, end: 3 });
  });
  it("stays bounded whatever the list's length", () => {
    for (const total of [100, 10_000, 1_000_000]) {
      const { start, end } = visibleWindow(total, total * 15, 900, 30);
      expect(end - start).toBeLessThanOrEqual(30 + 16);
    }
  });
});
