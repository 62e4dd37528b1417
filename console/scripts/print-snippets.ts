// Prints the console's "Copy as" snippets of recorded calls, for tests/console/test_snippets_run.py:
// reads [{call, kind, endpoint}, ...] as JSON on stdin, writes the snippets as a JSON list.
// Run with vite-node (console/node_modules): `npx vite-node scripts/print-snippets.ts`.
import { snippet, type SnippetKind } from "../src/snippets";
import type { CallDetails } from "../src/types";

interface Ask {
  call: CallDetails;
  kind: SnippetKind;
  endpoint: string;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk: string) => (input += chunk));
process.stdin.on("end", () => {
  const asks = JSON.parse(input) as Ask[];
  process.stdout.write(JSON.stringify(asks.map((ask) => snippet(ask.call, ask.kind, ask.endpoint))));
});
