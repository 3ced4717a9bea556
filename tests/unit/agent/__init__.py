"""Unit tests of the agent part."""
