"""Host protection: Calico's host endpoints with GlobalNetworkPolicy, compiled.

- spec.py: cluster.yaml's `host_protection:` (interfaces, failsafe ports, management networks);
- model.py: the `projectcalico.org/v3` GlobalNetworkPolicy subset the policy files may hold;
- load.py: finds those documents in the policy files, validates them (file:line:field);
- plan.py: which policies apply to which node (node labels, at compile time), their chains;
- rules.py: the iptables text of the policy and failsafe chains;
- chains.py: the static chains and hooks spliced into the shared iptables rules;
- lockout.py: the build-time check that no host policy cuts SSH, BGP, the API server or the
  agent's paths from the management networks and the other nodes.
The node side (dispatch rules and per-interface chains) is contract/host.py.
"""
