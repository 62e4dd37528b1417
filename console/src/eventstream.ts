// AWS event-stream framing (application/vnd.amazon.eventstream), decoded incrementally.
// A message: total length (u32), headers length (u32), prelude CRC (u32), headers, payload,
// message CRC (u32); big-endian. Header values: type byte then value (7 = string, u16 length).
// CRCs are not checked here: the console shows what the server sent.

export interface EventMessage {
  headers: Record<string, string | number | boolean>;
  payload: Uint8Array;
}

const utf8 = new TextDecoder();

export class EventStreamDecoder {
  private buffer = new Uint8Array(0);

  /** Feed bytes; returns the messages completed by them. */
  push(chunk: Uint8Array): EventMessage[] {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    this.buffer = joined;
    const messages: EventMessage[] = [];
    while (this.buffer.length >= 12) {
      const view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length);
      const total = view.getUint32(0);
      if (total < 16) throw new Error(`event-stream message of ${total} bytes`);
      if (this.buffer.length < total) break;
      const headersLength = view.getUint32(4);
      const headers = parseHeaders(this.buffer.subarray(12, 12 + headersLength));
      const payload = this.buffer.slice(12 + headersLength, total - 4);
      messages.push({ headers, payload });
      this.buffer = this.buffer.slice(total);
    }
    return messages;
  }
}

function parseHeaders(bytes: Uint8Array): Record<string, string | number | boolean> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out: Record<string, string | number | boolean> = {};
  let at = 0;
  while (at < bytes.length) {
    const nameLength = bytes[at];
    const name = utf8.decode(bytes.subarray(at + 1, at + 1 + nameLength));
    at += 1 + nameLength;
    const type = bytes[at];
    at += 1;
    switch (type) {
      case 0: out[name] = true; break;
      case 1: out[name] = false; break;
      case 2: out[name] = view.getInt8(at); at += 1; break;
      case 3: out[name] = view.getInt16(at); at += 2; break;
      case 4: out[name] = view.getInt32(at); at += 4; break;
      case 5: out[name] = Number(view.getBigInt64(at)); at += 8; break;
      case 6:
      case 7: {
        const length = view.getUint16(at);
        const value = bytes.subarray(at + 2, at + 2 + length);
        out[name] = type === 7 ? utf8.decode(value) : `(${length} bytes)`;
        at += 2 + length;
        break;
      }
      case 8: out[name] = Number(view.getBigInt64(at)); at += 8; break;
      case 9: at += 16; out[name] = "(uuid)"; break;
      default: throw new Error(`event-stream header type ${type}`);
    }
  }
  return out;
}

/** A decoded message as `{eventType: payload}` (or `{exceptionType: payload}`). */
export function eventOf(message: EventMessage): Record<string, unknown> {
  const kind = String(
    message.headers[":event-type"] ?? message.headers[":exception-type"] ?? "event",
  );
  let payload: unknown = {};
  if (message.payload.length) {
    const text = utf8.decode(message.payload);
    try {
      payload = JSON.parse(text);
    } catch {
      payload = text;
    }
  }
  return { [kind]: payload };
}
