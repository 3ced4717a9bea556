"""Kubernetes NetworkPolicy: loading with located errors, validation, and compilation to rules."""
