// The live table's data: rows kept newest first, bounded like the server's ring, and the
// filters the table applies.
import type { CallRow } from "./types";

export interface CallFilter {
  text: string;
  outcome: "all" | "ok" | "error";
  operation: string;
}

export const NO_FILTER: CallFilter = { text: "", outcome: "all", operation: "" };

/** Rows newest first, merged with `incoming` (any order), deduplicated by seq, at most `cap`. */
export function mergeRows(rows: CallRow[], incoming: CallRow[], cap: number): CallRow[] {
  if (!incoming.length) return rows;
  const top = rows.length ? rows[0].seq : 0;
  const fresh = incoming.filter((row) => row.seq > top).sort((a, b) => b.seq - a.seq);
  const older = incoming.filter((row) => row.seq <= top);
  let merged = fresh.length ? [...fresh, ...rows] : rows;
  if (older.length) {
    const known = new Set(merged.map((row) => row.seq));
    merged = [...merged, ...older.filter((row) => !known.has(row.seq))].sort(
      (a, b) => b.seq - a.seq,
    );
  }
  return merged.length > cap ? merged.slice(0, cap) : merged;
}

export function matches(row: CallRow, filter: CallFilter): boolean {
  if (filter.outcome === "ok" && row.errorCode) return false;
  if (filter.outcome === "error" && !row.errorCode) return false;
  if (filter.operation && row.operation !== filter.operation) return false;
  if (!filter.text) return true;
  const needle = filter.text.toLowerCase();
  return [row.id, row.operation, row.modelId, row.resolvedModel, row.engine, row.principal,
    row.errorCode, String(row.status), ...row.rules]
    .some((value) => value != null && value.toLowerCase().includes(needle));
}

export function applyFilter(rows: CallRow[], filter: CallFilter): CallRow[] {
  if (!filter.text && filter.outcome === "all" && !filter.operation) return rows;
  return rows.filter((row) => matches(row, filter));
}

/** The rows a virtualized list renders: those in view plus `overscan` on each side. */
export function visibleWindow(
  total: number,
  scrollTop: number,
  viewport: number,
  rowHeight: number,
  overscan = 8,
): { start: number; end: number } {
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const count = Math.ceil(Math.max(viewport, rowHeight) / rowHeight);
  const start = Math.max(0, first - overscan);
  const end = Math.min(total, first + count + overscan);
  return { start, end: Math.max(start, end) };
}
