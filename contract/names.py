"""The names and numbers the compiler writes and the node side reads: each defined once, here.

Devices, the VXLAN port and VNI, the route protocol, chain and ipset prefixes and the kernel's
length limits, the files inside a bundle and where the agent installs them, the state directory.
Paths on the node are absolute; the agent puts them under its --root (`agent.files.under`).
"""

from __future__ import annotations

# Address families, as ipaddress's `.version` numbers them: of an address, pool, set or rule.
V4, V6 = 4, 6

# Devices. IFNAMSIZ counts the name's bytes without the kernel's trailing NUL (16 - 1).
IFNAMSIZ = 15
TUNNEL_DEVICE = "tunl0"
VXLAN_DEVICE = "vxlan.calico"
VETH_PREFIX = "cali"  # host end of a pod's veth: VETH_PREFIX + 11 hex characters

# VXLAN, as Calico: the IANA port and Calico's VNI.
VXLAN_PORT = 4789
VXLAN_VNI = 4096

# Routes calicc installs carry this rtnetlink protocol number (BIRD's are 12).
ROUTE_PROTOCOL = 81

# iptables: every chain calicc owns starts with OWNED_CHAIN_PREFIX and has at most CHAIN_MAX
# characters (the kernel's XT_EXTENSION_MAXNAMELEN less the NUL, as iptables enforces).
OWNED_CHAIN_PREFIX = "cali-"
CHAIN_MAX = 28
FROM_DISPATCH = "cali-from-wl-dispatch"
TO_DISPATCH = "cali-to-wl-dispatch"
FW_PREFIX = "cali-fw-"  # from a workload: egress policy of one endpoint
TW_PREFIX = "cali-tw-"  # to a workload: ingress policy of one endpoint
RUNTIME_CHAIN_PREFIXES = (FW_PREFIX, TW_PREFIX)  # chains the CNI plugin owns, not the bundle
INGRESS_PREFIX = "cali-pi-"
EGRESS_PREFIX = "cali-po-"
ADMIN_INGRESS_PREFIX = "cali-ai-"  # ClusterNetworkPolicy, Admin tier, ingress
ADMIN_EGRESS_PREFIX = "cali-ao-"
BASELINE_INGRESS_PREFIX = "cali-bi-"  # ClusterNetworkPolicy, Baseline tier
BASELINE_EGRESS_PREFIX = "cali-bo-"
HOST_INGRESS_PREFIX = "cali-hi-"  # a host policy's chains (contract/host.py)
HOST_EGRESS_PREFIX = "cali-ho-"
CNP_PRIORITY_MAX = 1000  # a ClusterNetworkPolicy's priority is 0-1000 in its tier
# One chain per ClusterNetworkPolicy tier and direction (compiler/targets/iptables.py): per
# policy in evaluation order, a jump to its chain for packets of the pods in its subject set,
# then a return once it decided. An endpoint chain jumps to each tier chain once.
TIER_CHAINS = {
    ("Admin", "ingress"): "cali-admin-in",
    ("Admin", "egress"): "cali-admin-out",
    ("Baseline", "ingress"): "cali-baseline-in",
    ("Baseline", "egress"): "cali-baseline-out",
}
# For a pod no NetworkPolicy selects for the direction: the Admin tier chain, unless it accepted
# the Baseline one, then allow. Such a pod's endpoint chain ends with a goto here.
CNP_ONLY_CHAINS = {"ingress": "cali-cnp-in", "egress": "cali-cnp-out"}

# ipsets: names start with OWNED_SET_PREFIX and have at most IPSET_MAX characters.
OWNED_SET_PREFIX = "cali"
IPSET_MAX = 31
IPSET_MAXELEM = 1048576  # Calico's MaxIpsetSize
TEMP_SET_PREFIX = "cali4t"  # temporary twins of static sets while they are swapped in
SELECTOR_SET_PREFIX = "cali40s:"
NAMED_PORT_SET_PREFIX = "cali40n:"
IPBLOCK_SET_PREFIX = "cali40b:"
ALL_POOLS_SET = "cali40all-ipam-pools"
MASQ_POOLS_SET = "cali40masq-ipam-pools"
ALL_HOSTS_SET = "cali40all-hosts-net"
# IPv6 (`family inet6`) sets carry Calico's cali6 prefix; a set's family follows from its name.
V6_SET_PREFIX = "cali6"
TEMP_SET_PREFIX_V6 = "cali6t"
ALL_POOLS_SET_V6 = "cali60all-ipam-pools"
MASQ_POOLS_SET_V6 = "cali60masq-ipam-pools"
ALL_HOSTS_SET_V6 = "cali60all-hosts-net"


def set_family(name: str) -> str:
    """Return the ipset family of owned set `name`: inet6 for cali6 names, else inet.

    Examples:
        >>> set_family("cali60all-ipam-pools"), set_family("cali40all-ipam-pools")
        ('inet6', 'inet')
    """
    return "inet6" if name.startswith(V6_SET_PREFIX) else "inet"


# The files of a node's bundle. A node's directory (nodes/<node>/) holds only node.json and
# bird.conf; every other file a node uses is a file of the cluster part that node.json names
# for a role (FileEntry.source): the node's routes script, kernel settings, CNI conflist and
# iptables rules are each the same text for every node of one kind, so each is written once.
BUNDLE_VERSION = 4  # 4: policy.json's bindings have tiers, and host protection profiles
MANIFEST = "node.json"
BIRD_CONFIG = "bird.conf"
ROUTES_FILE = "routes/routes.sh"  # roles: node.json's key of the shared file that plays it
SYSCTL_FILE = "sysctl/99-calicc.conf"
CONFLIST = "cni/10-calicc.conflist"
IPTABLES_FILE = "iptables/iptables.rules"
IP6TABLES_FILE = "iptables/ip6tables.rules"  # nodes with IPv6: ip6tables-restore input

# The cluster part of a rendered tree, written once (paths relative to the rendered tree; in a
# node's installed bundle, relative to the bundle). contract/manifest.py says who names what.
CLUSTER_DIR = "cluster"
CLUSTER_INDEX = f"{CLUSTER_DIR}/index.json"  # every other cluster file's digest
CLUSTER_SETTINGS = f"{CLUSTER_DIR}/cluster.json"  # pools and the hooks every node keeps
CLUSTER_ROUTES = f"{CLUSTER_DIR}/routes.sh"  # every node's routes script: routes.sh NODE
NODES_TABLE = f"{CLUSTER_DIR}/nodes.tsv"  # the node table
CLUSTER_POLICY = f"{CLUSTER_DIR}/policy.json"  # policy bindings and ipsets
CLUSTER_IPSETS = f"{CLUSTER_DIR}/ipsets.restore"
CLUSTER_KUBECONFIG = f"{CLUSTER_DIR}/kubeconfig"  # cluster.yaml's kubernetes.server, as paths
# The shared files of each role, one per kind of node: cluster/<dir>/<kind><suffix>.
SHARED_DIRS = {
    IPTABLES_FILE: (f"{CLUSTER_DIR}/iptables", ".rules"),
    IP6TABLES_FILE: (f"{CLUSTER_DIR}/ip6tables", ".rules"),
    SYSCTL_FILE: (f"{CLUSTER_DIR}/sysctl", ".conf"),
    CONFLIST: (f"{CLUSTER_DIR}/cni", ".conflist"),
}
NODE_BUILT_FROM = (CLUSTER_SETTINGS,)  # named with its digest by node.json


def shared_path(role: str, kind: str) -> str:
    """Return the cluster file of `role` for nodes of `kind`.

    Examples:
        >>> shared_path("iptables/iptables.rules", "ipip")
        'cluster/iptables/ipip.rules'
    """
    directory, suffix = SHARED_DIRS[role]
    return f"{directory}/{kind}{suffix}"


def is_cluster_file(rel: str) -> bool:
    """Return whether bundle path `rel` names a file of the cluster part."""
    return rel.startswith(CLUSTER_DIR + "/")


# Where things live on a node.
INSTALL_PREFIX = "/etc/calicc/"
BUNDLE_DIR = f"{INSTALL_PREFIX}bundle"  # the last fully applied bundle, node.json included
BUNDLE_MANIFEST = f"{BUNDLE_DIR}/{MANIFEST}"
STATE_DIR = "/var/lib/calicc"  # runtime state: IPAM, endpoint records, the agent's memo
CNI_BIN_DIR = "/opt/cni/bin"
CNI_CONF_DIR = "/etc/cni/net.d"
INSTALL_OVERRIDES = {
    BIRD_CONFIG: f"{INSTALL_PREFIX}bird/bird.conf",
    CONFLIST: f"{CNI_CONF_DIR}/10-calicc.conflist",
    SYSCTL_FILE: "/etc/sysctl.d/99-calicc.conf",
}


def install_path(rel: str) -> str:
    """Return where the agent installs bundle file `rel`, relative to its --root.

    Examples:
        >>> install_path("bird.conf")
        'etc/calicc/bird/bird.conf'
        >>> install_path("iptables/iptables.rules")
        'etc/calicc/iptables/iptables.rules'
        >>> install_path("sysctl/99-calicc.conf")
        'etc/sysctl.d/99-calicc.conf'
    """
    return INSTALL_OVERRIDES.get(rel, INSTALL_PREFIX + rel).lstrip("/")


# VXLAN over IPv6, as Calico: its own device (same VNI and port), 70 bytes of overhead.
VXLAN_V6_DEVICE = "vxlan-v6.calico"

# IPv6 twins of the policy sets (issue 13): the set of a peer's or named port's IPv6 members is
# the IPv4 set's name with Calico's cali60 prefix (cali60s:, cali60n:, cali60b:), same hash.
V4_SET_PREFIX = "cali4"
# ICMPv6 neighbour discovery (and MLD) an endpoint chain accepts before policy: Calico's list
# (felix cali-wl-to-host); a workload may not send router advertisements (134).
ICMPV6_ND_TO_WORKLOAD = (130, 131, 132, 133, 134, 135, 136)
ICMPV6_ND_FROM_WORKLOAD = (130, 131, 132, 133, 135, 136)


def v6_twin(name: str) -> str:
    """Return the `family inet6` twin of IPv4 set `name` (an IPv6 set's name is its own twin).

    Examples:
        >>> v6_twin("cali40s:qMt7iLlGDhvLnCjM0l9nzxb")
        'cali60s:qMt7iLlGDhvLnCjM0l9nzxb'
    """
    return V6_SET_PREFIX + name[len(V4_SET_PREFIX) :] if name.startswith(V4_SET_PREFIX) else name
