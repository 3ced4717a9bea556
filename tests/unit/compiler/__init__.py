"""Unit tests of the compiler part."""
