"""Sans-IO protocol code: errors, event-stream framing, restJson1 binding; no I/O."""
