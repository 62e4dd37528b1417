"""Amazon Bedrock Guardrails, sans-IO: definitions, detectors, assessments and their AWS shapes.

`model` reads a guardrail's definition (the CreateGuardrail request shape); `pii`, `words`,
`content` and `topics` detect; `assess` turns detections into an intervention decision and the
masked or blocked text; `shapes` writes assessments and traces as AWS sends them; `store` keeps
definitions and their versions; `invoke` and `streaming` are the InvokeModel-specific parts.
docs/guardrails.md says which detector is a classifier and which is a rule set.
"""
