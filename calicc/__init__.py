"""calicc: Calico-style pod networking compiled from git.

One import package. Its parts are the folders the project keeps at its top, linked here:
compiler/ (cluster.yaml to node bundles), agent/ (node agent and CNI plugins), lab/ (network
namespace simulation), trace/ (what the compiled cluster does with a packet), templates/ and
playbooks/ (package data).
"""

__version__ = "0.1.0"
