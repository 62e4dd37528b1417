"""Inference engines behind one narrow interface (see `base`)."""
