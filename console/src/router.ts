// Hash routes: #/calls, #/call/ID, #/playground, #/rules, #/guardrails, #/resources.
import { useEffect, useState } from "preact/hooks";

export function parseRoute(hash: string): { page: string; arg: string } {
  const parts = hash.replace(/^#\/?/, "").split("/");
  const page = parts[0] || "calls";
  return { page, arg: decodeURIComponent(parts.slice(1).join("/")) };
}

export function useRoute(): { page: string; arg: string } {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return parseRoute(hash);
}
