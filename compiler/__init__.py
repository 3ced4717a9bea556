"""calicc compiler: cluster.yaml to reviewable per-node networking artifacts."""

__version__ = "0.1.0"
