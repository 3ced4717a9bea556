"""The patterns names are checked against, in one place both sides import.

No pydantic here: the standalone CNI path uses them too. Match them whole, with `fullmatch`.
"""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(rf"{DNS1123_LABEL.pattern}(\.{DNS1123_LABEL.pattern})*")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
IANA_SVC_NAME = re.compile(r"(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Linux accepts any bytes but '/', ':', whitespace and NUL (dev_valid_name); calicc accepts the
# names people use (eth0, ens3f0, bond0.100, br-ex, vlan_10) and nothing a shell or BIRD reads.
INTERFACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
NODE_PATH = re.compile(r"(/[A-Za-z0-9_.@+-]+)+")
ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # every control character, tab included
# What a runtime may pass as CNI_CONTAINERID (libcni's utils.ValidateContainerID), and its length.
CONTAINER_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
CONTAINER_ID_MAX = 256
