"""Ansible playbooks and roles, shipped in the wheel as package data (importlib.resources)."""
