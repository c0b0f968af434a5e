"""The secrets a command holds: no message it prints may show them."""

from __future__ import annotations

import itertools
import os
import re
import sys

from connector.redaction import uri_secrets

# The environment bt-sync and the libraries it drives read settings and credentials from.
_SETTING_PREFIXES = ("BT_SYNC_", "BRAINTRUST_", "AWS_", "PYICEBERG_")
# Such variables whose whole value is a secret.
_SECRET_VARIABLE = re.compile(r"KEY|SECRET|TOKEN|PASSWORD", re.IGNORECASE)


def secrets_given() -> set[str]:
    """The secrets the command line and the environment hold: no error message may show them.

    A library's message can quote a setting in a form `redact` does not know (see `uri_secrets`).
    """
    # Matched whatever their case, as the settings read them.
    settings = {
        name: value for name, value in os.environ.items() if name.upper().startswith(_SETTING_PREFIXES)
    }
    secrets = {value for name, value in settings.items() if _SECRET_VARIABLE.search(name)}
    arguments = sys.argv[1:]
    secrets.update(value for flag, value in itertools.pairwise(arguments) if flag == "--api-key")
    secrets.update(
        argument.removeprefix("--api-key=") for argument in arguments if argument.startswith("--api-key=")
    )
    # httpx reads a proxy, and a message names it, from variables of any case (`https_proxy`).
    proxies = [value for name, value in os.environ.items() if name.upper().endswith("_PROXY")]
    for value in (*arguments, *settings.values(), *proxies):
        secrets |= uri_secrets(value)
    return secrets
