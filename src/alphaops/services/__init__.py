"""Use cases: what the CLI commands and API routes call. Each takes the frozen config (or the
objects built from it), does one job through the library, and returns plain results."""
