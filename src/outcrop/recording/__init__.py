"""Recording real Bedrock and SageMaker traffic into cassettes, and replaying it offline
(docs/cassettes.md)."""
