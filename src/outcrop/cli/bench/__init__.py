"""`outcrop bench`, a load generator for Bedrock-compatible endpoints.

Sans-IO cores: `schedule` (when requests are sent), `stats` (latency and throughput figures),
`decode` (response bytes → stream events), `prompts`. Around them: `client` (HTTP transports),
`runner` (the asyncio run), `report` and `plot` (results), `command` (the CLI).
"""
