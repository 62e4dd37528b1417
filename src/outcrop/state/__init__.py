"""State that outlives a request.

`store` is the durable document store every replica shares (`StateStore`: versioned documents
written all-or-nothing with compare-and-set, per-kind generations for cache invalidation), with
two backends: `sqlite` (embedded, the default: a file under the state directory, or in memory)
and `postgresql` (for fleets). `migrations` holds the schema both share, `open_state` picks the
backend from `[state]`. docs/state.md describes what lives there and how it behaves.
"""
