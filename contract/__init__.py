"""The contract between the compiler and the node side (agent and CNI plugin), in one place.

The compiler writes a node bundle; the agent and the CNI plugin read it. Everything both sides
must agree on lives here and nowhere else: the node manifest model (`manifest`, pydantic, the
schema of node.json), a light reader of the facts the CNI plugin needs (`node`, no pydantic),
the shared names and numbers (`names`: devices, VXLAN port and VNI, route protocol, chain and
set prefixes and limits, bundle files, install paths, state directory), the iptables rule text
and per-endpoint chains both sides program (`syntax`, `endpoint`, `selectors`) and the error
base (`errors`). Nothing here imports the compiler or the agent.
"""
