"""Process entry points of the two CNI executables (stdin, CNI_* environment, stdout, exit)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping

from calicc.agent.cni.errors import CniError
from calicc.agent.cni.ipam_plugin import handle_ipam
from calicc.agent.cni.plugin import handle_plugin
from calicc.agent.cni.request import Request, parse_conf, parse_request
from calicc.agent.cni.result import SUPPORTED_VERSIONS
from calicc.agent.cni.thin import MAX_STDIN

INTERNAL_ERROR = 999
MAX_DETAIL = 200  # characters of an unexpected exception's text in the error
Handler = Callable[[Request], str]
HANDLERS: dict[str, Handler] = {"plugin": handle_plugin, "ipam": handle_ipam}


def _asked_version(stdin: bytes) -> str:
    """Return the request's cniVersion when calicc speaks it, else 1.0.0 (never echo garbage)."""
    try:
        asked = parse_conf(stdin).get("cniVersion")
    except CniError:
        return "1.0.0"
    return asked if asked in SUPPORTED_VERSIONS else "1.0.0"


def version_text(stdin: bytes) -> str:
    """Return the VERSION answer in the requested cniVersion (default 1.0.0)."""
    body = {"cniVersion": _asked_version(stdin), "supportedVersions": list(SUPPORTED_VERSIONS)}
    return json.dumps(body, sort_keys=True) + "\n"


def run(kind: str, env: Mapping[str, str], stdin: bytes, root: str = "") -> tuple[int, str]:
    """Run one invocation of plugin `kind` ("plugin" or "ipam"): (exit status, stdout text)."""
    try:
        if env.get("CNI_COMMAND") == "VERSION":
            return 0, version_text(stdin)
        return 0, HANDLERS[kind](parse_request(env, stdin, root))
    except CniError as exc:
        return exc.exit_code(), exc.to_json(_asked_version(stdin))
    except Exception as exc:  # the runtime needs an error object, not a traceback
        what = f"{type(exc).__name__}: {str(exc)[:MAX_DETAIL]}"
        error = CniError(INTERNAL_ERROR, f"calicc {kind} failed unexpectedly ({what})")
        return 1, error.to_json(_asked_version(stdin))


def _main(kind: str) -> None:
    code, out = run(kind, os.environ, sys.stdin.buffer.read(MAX_STDIN + 1))
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.exit(code)


def plugin_main() -> None:
    """Entry point of the `calicc` CNI plugin (console script `calicc-cni`)."""
    _main("plugin")


def ipam_main() -> None:
    """Entry point of the `calicc-ipam` CNI plugin."""
    _main("ipam")


if __name__ == "__main__":
    _main(sys.argv[1] if len(sys.argv) > 1 else "plugin")
