import { describe, expect, it } from "vitest";
import { base64Bytes, wavFromPcm } from "../src/wav";

describe("wavFromPcm", () => {
  it("writes a 44-byte RIFF header for 16-bit mono PCM at the given rate", () => {
    const pcm = base64Bytes(btoa("\u0001\u0000\u0002\u0000"));
    const wav = wavFromPcm(pcm, 24000);
    const view = new DataView(wav.buffer);
    const text = (at: number, n: number) => String.fromCharCode(...wav.slice(at, at + n));
    expect([text(0, 4), text(8, 4), text(12, 4), text(36, 4)]).toEqual(["RIFF", "WAVE", "fmt ", "data"]);
    expect(view.getUint32(4, true)).toBe(36 + 4);
    expect(view.getUint16(22, true)).toBe(1);
    expect(view.getUint32(24, true)).toBe(24000);
    expect(view.getUint32(28, true)).toBe(48000);
    expect(view.getUint16(34, true)).toBe(16);
    expect(view.getUint32(40, true)).toBe(4);
    expect([...wav.slice(44)]).toEqual([1, 0, 2, 0]);
  });
});
