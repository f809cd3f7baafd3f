"""Pure builders of Kubernetes objects (no I/O, no clock, deterministic, sorted output)."""
