"""The CNI plugins `calicc` (pod networking) and `calicc-ipam` (addresses from the node's blocks).

Layout: `request` (netconf + CNI_* environment), `errors` (CNI error objects), `ipam` (file-locked
address store), `veth` (netlink wiring), `result` (versioned results), `plugin` / `ipam_plugin`
(command dispatch), `server` + `thin` (fast path through the running agent), `install`
(launchers in <root>/opt/cni/bin).
"""
