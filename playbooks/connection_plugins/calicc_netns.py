"""Ansible connection plugin: run a lab node's tasks inside its network namespace.

Lab nodes are network namespaces on the controller's machine (`calicc lab`): files are shared,
so files move as with the `local` connection, and every command runs through
`ip netns exec <calicc_netns>`. A missing namespace makes the host unreachable, as a powered-off
machine would be.
"""

from __future__ import annotations

import os
import shlex

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as LocalConnection

DOCUMENTATION = """
    name: calicc_netns
    short_description: run tasks inside a calicc lab node's network namespace
    description:
        - Like the local connection, with every command run by `ip netns exec NAMESPACE`.
    author: calicc
    options:
        netns:
            description: name of the node's network namespace (ip netns list)
            required: true
            type: str
            vars:
                - name: calicc_netns
    extends_documentation_fragment:
        - connection_pipelining
"""

NETNS_DIR = "/run/netns"


class Connection(LocalConnection):
    """Local connection whose commands run inside a named network namespace."""

    transport = "calicc_netns"

    def _netns(self) -> str:
        name = str(self.get_option("netns"))
        if not name or "/" in name or not os.path.exists(os.path.join(NETNS_DIR, name)):
            raise AnsibleConnectionFailure(f"network namespace {name!r} does not exist")
        return name

    def _connect(self) -> Connection:
        self._netns()
        super()._connect()
        return self

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        """Run `cmd` (a shell command line) inside the node's namespace."""
        wrapped = f"ip netns exec {shlex.quote(self._netns())} {cmd}"
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)
