"""Hide the credentials a URL or URI may carry, before it is shown in a message or a log."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

# Credentials in a URI's user part (`s3://KEY:SECRET@bucket`, `https://user:token@host`). A password is
# everything from the user's `:` to the `@`, as SQLAlchemy reads a catalog URI's (`?` and `/` included: an
# AWS secret may hold a `/`), unless it reads as a port and a path or query (`host:8181/v1?owner=a@b`); a
# user part without a password ends at a query, whose values may hold an `@`, or at a quote (JSON's: no
# URL holds one). Past a first `@`, it runs to the last `@` before the host's end (`/`, `?`, `#`): httpx
# splits a proxy's `user:p@ss@host` there. Each part is bounded, and read once (possessive: none can end
# but where the next begins): a text of many schemes and no `@` after them (a long message) took seconds
# to scan, each scheme's part read to the text's end and back; a scheme starts a word (a long word before
# one was read again from each of its letters).
_USERINFO = re.compile(
    r"(?P<scheme>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+://)"
    r"(?P<userinfo>(?:[^@\s/:]{0,8192}+:(?!\d+[/?#])[^@\s]{0,8192}+|[^@\s?\"]{0,8192}+)(?:@[^@\s/?#\"]*+)*)@",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*", re.IGNORECASE)
# Query parameters that carry secrets: pyarrow's S3 options (`access_key`, `secret_key`, `session_token`),
# an `api_key`, a signature, a password.
# A name starts a word and is short: a long word (a message of one) was read again from each of its letters.
_SECRET_PARAMETER = re.compile(
    r"(?P<name>(?<![\w.-])[\w.-]{0,64}(?:key|secret|token|password|signature|credential)[\w.-]{0,64})"
    r"=(?P<value>[^&\s]*)",
    re.IGNORECASE,
)
# Shorter values are not scrubbed from messages: replacing every `k` of a test key would garble them (a
# server's own text hides them as words: `hide_short_secret`).
SHORTEST_SECRET = 6


def redact(text: str) -> str:
    """`text` with the credentials of any URI in it replaced by `***`, fit for messages and logs."""
    with_users = _USERINFO.sub(r"\g<scheme>***@", text) if "@" in text else text
    return _SECRET_PARAMETER.sub(r"\g<name>=***", with_users)


def redact_url(url: str) -> str:
    """A URL setting (a proxy's), its credentials hidden: read as the one URL it is, whose password may
    hold what `redact` takes for the end of one in a message (a blank, which httpx takes in a proxy's)."""
    if (userinfo := _userinfo_of_url(url)) is not None:
        url = url.replace(f"{userinfo}@", "***@", 1)
    return redact(url)


def uri_secrets(text: str) -> set[str]:
    """The credentials URIs in `text` carry: user parts (and their passwords) and secret-named parameters.

    A library's message may quote them without the scheme `redact` looks for (pyiceberg names the bucket
    of `s3://KEY:SECRET@bucket` as `'KEY:SECRET@bucket'`): `scrub` removes them wherever they show.
    """
    found: set[str] = set()
    for match in _USERINFO.finditer(text):
        userinfo = match["userinfo"]
        password = userinfo.split(":", 1)[1:]
        found.add(_basic_credentials(userinfo))
        # A `/` in the password ends the host for URL parsers: a message may quote the part before it.
        found.update((userinfo, *password, *(piece for p in password for piece in p.split("/"))))
        # A library signs with the password decoded (`%2F` as `/`), and may quote it so.
        found.update(unquote(p) for p in password)
    found.update(match["value"] for match in _SECRET_PARAMETER.finditer(text))
    # A setting that is one URL, read as such: its password may hold a blank.
    if (userinfo := _userinfo_of_url(text)) is not None and ":" in userinfo:
        whole_password = userinfo.partition(":")[2]
        found.update((userinfo, whole_password, unquote(whole_password), _basic_credentials(userinfo)))
    return {secret for secret in found if len(secret) >= SHORTEST_SECRET}


def _basic_credentials(userinfo: str) -> str:
    """A URL's user part as HTTP's Basic authentication sends it, to a proxy (`Proxy-Authorization`): its
    user and password decoded, in base64, which a proxy's error page listing the request's headers shows."""
    user, _, password = userinfo.partition(":")
    return base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` redacted, and with each of `secrets` (at least `SHORTEST_SECRET` long) replaced by `***`.

    Each secret is also found as Python's `repr` and JSON spell it: a traceback quotes a value holding a
    newline or a non-ASCII character escaped (pydantic's `input_value='…\\n…'`), and so does a JSON body.
    """
    spellings = {spelling for secret in secrets for spelling in _spellings(secret)}
    for spelling in sorted(spellings, key=len, reverse=True):
        if len(spelling) >= SHORTEST_SECRET:
            text = text.replace(spelling, "***")
    return redact(text)


def hide_short_secret(text: str, secret: str) -> str:
    """`text`, a server's, with `secret` replaced by `***` where it stands as a word (`invalid token k3y`)
    when it is too short for `scrub`; only there: bt-sync's own words would be garbled (a key `API`)."""
    if len(secret) >= SHORTEST_SECRET or not re.fullmatch(r"\w(.*\w)?", secret, re.DOTALL):
        return text
    return re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "***", text)


def _userinfo_of_url(text: str) -> str | None:
    """The user part of `text` read as one URL, as httpx reads a proxy's: its authority runs to the first
    `/`, `?` or `#`, its user part to the authority's last `@`. None: it is no URL, or has none."""
    scheme, separator, rest = text.strip().partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        return None
    userinfo, at, _ = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")
    return userinfo if at else None


def _spellings(secret: str) -> tuple[str, ...]:
    return (
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        # As JSON writers that escape a slash write it (PHP's, a proxy's page of the request's headers): a
        # base64 credential holds slashes.
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        # As a URL's query quotes it (a server echoing the request's URL), in either case; a lone
        # surrogate (a key read from bytes that are no UTF-8) as its bytes.
        (quoted := quote(secret, safe="", errors="surrogatepass")),
        re.sub("%[0-9A-F]{2}", lambda escape: escape[0].lower(), quoted),
    )
