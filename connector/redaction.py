"""Hide the credentials a URL or URI may carry, before it is shown in a message or a log."""

from __future__ import annotations

import re

# Credentials in a URI's user part (`s3://KEY:SECRET@bucket`, `https://user:token@host`); an AWS secret
# may hold a `/`, so the user part is taken up to the last `@` before any space or query.
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^@\s?]*@", re.IGNORECASE)
# Query parameters that carry secrets: pyarrow's S3 options (`access_key`, `secret_key`, `session_token`),
# an `api_key`, a signature, a password.
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[\w.-]*(?:key|secret|token|password|signature|credential)[\w.-]*)=[^&\s]*", re.IGNORECASE
)


def redact(text: str) -> str:
    """`text` with the credentials of any URI in it replaced by `***`, fit for messages and logs."""
    return _SECRET_PARAMETER.sub(r"\g<name>=***", _USERINFO.sub(r"\g<scheme>***@", text))
