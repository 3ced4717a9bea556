"""Unit tests of the cni part."""
