"""Known Bedrock model IDs, identifier resolution, and the mapping from models to engines."""
