import { describe, expect, it } from "vitest";
import { EventStreamDecoder, eventOf } from "../src/eventstream";

const utf8 = new TextEncoder();

/** One event-stream message (CRCs zero: the decoder does not check them). */
function frame(headers: Record<string, string>, payload: string): Uint8Array {
  const parts: number[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = utf8.encode(name);
    const v = utf8.encode(value);
    parts.push(n.length, ...n, 7, v.length >> 8, v.length & 255, ...v);
  }
  const body = utf8.encode(payload);
  const total = 12 + parts.length + body.length + 4;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, total);
  view.setUint32(4, parts.length);
  out.set(parts, 12);
  out.set(body, 12 + parts.length);
  return out;
}

const delta = frame(
  { ":event-type": "contentBlockDelta", ":message-type": "event" },
  '{"contentBlockIndex":0,"delta":{"text":"Hi"}}',
);
const stop = frame({ ":event-type": "messageStop", ":message-type": "event" }, '{"stopReason":"end_turn"}');

describe("EventStreamDecoder", () => {
  it("decodes whole messages split anywhere across chunks", () => {
    const both = new Uint8Array([...delta, ...stop]);
    for (let cut = 1; cut < both.length; cut += 7) {
      const decoder = new EventStreamDecoder();
      const messages = [...decoder.push(both.slice(0, cut)), ...decoder.push(both.slice(cut))];
      expect(messages.map(eventOf)).toEqual([
        { contentBlockDelta: { contentBlockIndex: 0, delta: { text: "Hi" } } },
        { messageStop: { stopReason: "end_turn" } },
      ]);
    }
  });

  it("names an exception by its exception type", () => {
    const error = frame(
      { ":exception-type": "throttlingException", ":message-type": "exception" },
      '{"message":"Rate exceeded"}',
    );
    const [message] = new EventStreamDecoder().push(error);
    expect(message.headers[":message-type"]).toBe("exception");
    expect(eventOf(message)).toEqual({ throttlingException: { message: "Rate exceeded" } });
  });

  it("refuses a message shorter than its own prelude", () => {
    const bad = new Uint8Array(16);
    new DataView(bad.buffer).setUint32(0, 4);
    expect(() => new EventStreamDecoder().push(bad)).toThrow(/4 bytes/);
  });
});
