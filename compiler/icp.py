"""IBM Cloud Private: config.yaml plus its Ansible `hosts` inventory, read as a cluster."""

from __future__ import annotations

from pathlib import Path

from compiler.build import Inputs


def load_icp(config: Path, hosts: Path) -> Inputs:
    """Read an ICP config.yaml and hosts file as one cluster description."""
    raise NotImplementedError
