"""A small host-protection cluster for the host unit tests, written into a temporary directory."""

from __future__ import annotations

from pathlib import Path

from calicc.compiler.build import Compiled, compile_cluster, load_cluster

CLUSTER = """name: hp
network_cidr: 10.244.0.0/16
ipip_mode: Always
kubernetes:
  server: https://10.0.0.1:6443
  certificate_authority: /etc/ca.crt
  token_file: /etc/token
host_protection:
  interfaces: ["*"]
{failsafes}  management_networks: [192.168.100.0/24]
nodes:
  - {{name: master, address: 10.0.0.1/24, labels: {{role: master}}}}
  - {{name: worker-1, address: 10.0.0.2/24, labels: {{role: worker}}}}
  - {{name: worker-2, address: 10.0.0.3/24, labels: {{role: worker}}, host_interfaces: [eth0]}}
policies: [host.yaml]
"""
OPEN = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: open}
spec:
  order: 100
  selector: all()
  types: [Ingress, Egress]
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
"""


def write(tmp: Path, policies: str, inbound: str = "[]", outbound: str = "[]") -> Path:
    """Write the cluster (failsafes off unless given, "default": Calico's) and host.yaml."""
    (tmp / "host.yaml").write_text(policies)
    path = tmp / "cluster.yaml"
    failsafes = "".join(
        f"  failsafe_{way}: {value}\n"
        for way, value in (("inbound", inbound), ("outbound", outbound))
        if value != "default"
    )
    path.write_text(CLUSTER.format(failsafes=failsafes))
    return path


def build(tmp: Path, policies: str, **failsafes: str) -> Compiled:
    """Compile the cluster in memory."""
    return compile_cluster(load_cluster(write(tmp, policies, **failsafes)))
