"""Amazon Bedrock Guardrails: definitions, detectors, assessments and their AWS shapes.

`model` reads a guardrail's definition (the CreateGuardrail request shape); `pii`, `words`,
`content` and `topics` detect (`lists` loads their word lists); `assess` turns detections into
an intervention decision and the masked or blocked text; `shapes` writes assessments and traces
as AWS sends them; `store` keeps definitions and their versions (persisted); `settings` is the
`[guardrails]` configuration; `runtime` resolves a guardrail version and assesses with it;
`invoke` and `streaming` are the InvokeModel-specific parts (options, input tags, chunking).
All of it is sans-IO except the embedding call of the topic classifier and the state file.
docs/guardrails.md says which detector is a classifier and which is a rule set.
"""
