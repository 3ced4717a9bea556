"""pydantic v2 models of calicc's input: the single source of schemas/."""
