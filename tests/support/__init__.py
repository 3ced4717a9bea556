"""Helpers the tests share: one support package; no test module imports another."""
