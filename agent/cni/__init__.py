"""The CNI plugins `calicc` (pod networking) and `calicc-ipam` (addresses from the node's blocks).

Layout: `request` (netconf + CNI_* environment), `errors` (CNI error objects), `ipam` (file-locked
address store), `veth` (pod wiring over `rtnl`, a small rtnetlink client), `result` (versioned
results), `plugin` / `ipam_plugin` (command dispatch), `server` + `thin` / `thin.c` (fast path
through the running agent), `live_filter` (the filter table cached between requests), `install`
(launchers in <root>/opt/cni/bin).
"""
