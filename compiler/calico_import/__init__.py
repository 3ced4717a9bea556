"""`calicc import`: cluster.yaml, policies and lock from a running Calico's exported resources.

resources.py reads calicoctl's and kubectl's `-o yaml` output into located resources; pools.py,
bgp.py and nodes.py map them onto cluster.yaml's keys; blocks.py turns BlockAffinities and
IPAMBlocks into the lock; policies.py keeps Kubernetes NetworkPolicies; report.py collects what
could not be mapped; run.py checks that the result builds and keeps every block, then writes.
"""
