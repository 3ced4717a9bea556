"""Unit tests of the shared test helpers that are products of their own (the stub API)."""
