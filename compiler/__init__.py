"""calicc compiler: cluster.yaml to reviewable per-node networking artifacts."""
