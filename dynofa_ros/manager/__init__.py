"""manager layer."""
