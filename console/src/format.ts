export function ms(value: number | null | undefined): string {
  return value == null ? "–" : `${value} ms`;
}

export function num(value: number | null | undefined): string {
  return value == null ? "–" : String(value);
}

export function clock(epochMs: number): string {
  const date = new Date(epochMs);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function pretty(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}
