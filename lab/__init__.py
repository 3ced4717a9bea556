"""calicc lab: run a compiled cluster as network namespaces on this machine."""
