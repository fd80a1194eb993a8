"""repx."""
