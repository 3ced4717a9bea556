"""CNI error objects: the spec's well-known codes and a message that says what to do."""

from __future__ import annotations

import json

# CNI spec 1.0.0 "Error" section (1.1.0 adds 50/51 for STATUS).
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
CONTAINER_UNKNOWN = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50
# Plugin-specific codes (the spec reserves 100 and up for plugins).
POOL_EXHAUSTED = 100
NETLINK_FAILURE = 101
CHECK_FAILED = 102
POLICY_FAILURE = 103
KUBERNETES_FAILURE = 104


class CniError(Exception):
    """A failure reported to the runtime as a CNI error object on stdout."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> str:
        """Return the error object as the spec's JSON (cniVersion, code, msg, details)."""
        body: dict[str, object] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            body["details"] = self.details
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    def exit_code(self) -> int:
        """Return the process exit status: non-zero, the code itself when it fits a byte."""
        return self.code if 0 < self.code < 256 else 1  # noqa: PLR2004
