"""One renderer per output kind: each turns a NodePlan into {relative path: text}."""
