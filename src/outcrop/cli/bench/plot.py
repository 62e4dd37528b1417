"""The PNG plot of a benchmark run (matplotlib, no display needed).

Top: time to first token and end-to-end latency percentiles (p50, p90, p99) per interval of
the run, by completion time. Bottom: output tokens per second and requests per second per
interval, with errors per second when there were any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(doc: dict[str, Any], path: Path) -> None:
    """Draw the results document `doc` (see report.document) into `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = doc["timeline"]["buckets"]
    width = doc["timeline"]["bucket_s"]
    mid = [b["t"] + width / 2 for b in buckets]
    fig, (lat, thr) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    styles = {"p50": "-", "p90": "--", "p99": ":"}
    for metric, color, label in (("ttft_s", "tab:blue", "TTFT"), ("e2e_s", "tab:orange", "E2E")):
        for q, style in styles.items():
            xs, ys = [], []
            for x, b in zip(mid, buckets, strict=True):
                if b[metric] is not None:
                    xs.append(x)
                    ys.append(b[metric][q] * 1000)
            if xs:
                lat.plot(xs, ys, style, color=color, label=f"{label} {q}", marker=".")
    lat.set_ylabel("latency (ms)")
    lat.set_ylim(bottom=0)
    lat.grid(alpha=0.3)
    lat.legend(loc="upper left", ncols=2, fontsize="small")

    tokens = [b["output_tokens_per_s"] for b in buckets]
    thr.step(mid, tokens, where="mid", color="tab:green", label="output tokens/s")
    thr.set_ylabel("output tokens/s", color="tab:green")
    thr.set_ylim(bottom=0)
    thr.set_xlabel("time since start (s)")
    thr.grid(alpha=0.3)
    reqs = thr.twinx()
    reqs.step(mid, [b["requests_per_s"] for b in buckets], where="mid", color="tab:purple")
    if any(b["errors_per_s"] for b in buckets):
        reqs.step(mid, [b["errors_per_s"] for b in buckets], where="mid", color="tab:red")
    reqs.set_ylabel("requests/s (purple), errors/s (red)")
    reqs.set_ylim(bottom=0)

    s = doc["summary"]
    target = doc["target"]
    title = (
        f"{target['operation']} {target['model_id']}\n{_plan(doc['plan'])}\n"
        f"{s['requests']} ok, {s['failed']} failed in {s['duration_s']:.1f} s · "
        f"{s['requests_per_s']:.1f} req/s · {s['output_tokens_per_s']:.0f} tokens/s"
    )
    if doc.get("interrupted"):
        title += " · interrupted"
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plan(plan: dict[str, Any]) -> str:
    if plan.get("rate"):
        text = f"rate {plan['rate']}"
        if plan.get("concurrency"):
            text += f", ≤{plan['concurrency']} in flight"
    else:
        text = f"concurrency {plan.get('concurrency')}"
    return text + f", max_tokens {plan.get('max_tokens')}"
