"""Pure translation between provider body formats and the neutral types of `outcrop.types`."""
