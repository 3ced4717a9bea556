"""calicc trace: what the compiled cluster does with one packet, from the rendered tree.

The answer is read from the product itself: the nodes table, pools and policy of the rendered
tree, each node's bird.conf, and the filter table the node will hold (the role's iptables file
with the endpoint chains its pods get, built by the same contract functions the agent uses),
interpreted rule by rule for the packet.
"""
