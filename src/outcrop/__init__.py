"""Outcrop: Bedrock Runtime and SageMaker Runtime on local models, over the AWS wire protocol."""

__version__ = "0.1.0"
