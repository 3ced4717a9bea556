"""Unit tests of the lab part."""
