"""One module per AWS service: operations parse input, resolve models, call dialects and engines."""
