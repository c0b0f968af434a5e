"""The API key and the credentials in URLs never reach the terminal or a file bt-sync writes (README)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from connector.emulator import Emulator, FaultRule
from connector.redaction import hide_short_secret, redact, scrub, uri_secrets
from tests.helpers import CLI, cli_env, cli_in_process, free_port, run_cli


def _files_under(directory: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in directory.rglob("*") if p.is_file())


def test_an_error_quoting_the_key_back_shows_it_nowhere(emulator: Emulator, tmp_path: Path) -> None:
    echoed = f'{{"error": "bad header Authorization: Bearer {emulator.api_key}"}}'
    env = cli_env(emulator, tmp_path)
    rows = tmp_path / "rows.csv"
    rows.write_text("id,input\na,1\nb,2\n")
    rejects = tmp_path / "rejects.jsonl"
    emulator.faults.add(FaultRule(kind="status", route="/insert", status=400, body=echoed, times=None))
    skip = ("--on-error", "skip", "--rejects", str(rejects))
    pushed = run_cli("push", str(rows), "--project", "p", "--dataset", "d", *skip, env=env)
    # Every row refused by the API: nothing stored, exit 1.
    assert (pushed.returncode, "no row of rows.csv was stored" in pushed.stderr) == (1, True), pushed.stderr
    assert "Bearer ***" in rejects.read_text()

    emulator.faults.add(FaultRule(kind="status", route="/fetch", status=400, body=echoed, times=None))
    synced = run_cli("sync", "--objects", "datasets", "--json", env=env)
    plain = run_cli("sync", "--objects", "datasets", env=env)
    assert synced.returncode == plain.returncode == 1
    assert "Bearer ***" in synced.stdout and "Bearer ***" in plain.stdout

    shown = pushed.stdout + pushed.stderr + synced.stdout + synced.stderr + plain.stdout + plain.stderr
    assert emulator.api_key not in shown + _files_under(tmp_path)


@pytest.mark.parametrize("variable", ["braintrust_api_key", "Braintrust_Api_Key"])
def test_a_key_set_in_a_variable_spelled_in_lowercase_is_not_read_and_not_shown(
    emulator: Emulator, tmp_path: Path, variable: str
) -> None:
    # Read whatever the case, such a variable overrode the documented one, whichever came last.
    env = {name: value for name, value in os.environ.items() if name.upper() != "BRAINTRUST_API_KEY"}
    env |= cli_env(emulator, tmp_path)
    env[variable] = env.pop("BRAINTRUST_API_KEY")
    done = subprocess.run([*CLI, "projects"], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"bt-sync: warning: {variable} is not read: variable names are case-sensitive, and bt-sync reads "
        "BRAINTRUST_API_KEY\n"
        "bt-sync: error: No Braintrust API key: set BRAINTRUST_API_KEY or pass --api-key.\n"
    )


def test_secrets_in_variables_spelled_in_any_case_are_known_to_the_error_printer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connector.cli.secrets import secrets_given

    monkeypatch.setenv("bt_sync_parquet", "s3://AKIA1:pass%2Fword@host/bucket")
    monkeypatch.setenv("aws_secret_access_key", "wJalr-lower")
    # The password also as a library that decoded it (to sign with it) would quote it.
    assert {"wJalr-lower", "pass%2Fword", "pass/word"} <= secrets_given()


def test_a_key_too_long_for_the_servers_headers_is_named_as_the_cause(
    emulator: Emulator, tmp_path: Path
) -> None:
    # A file's content given as the key: the server's 431 page was called "not Braintrust's JSON: is the
    # API URL a Braintrust API?".
    key = "sk-" + "x" * 66_000
    done = run_cli("projects", env=cli_env(emulator, tmp_path) | {"BRAINTRUST_API_KEY": key})
    assert done.returncode == 1
    assert done.stderr == (
        "bt-sync: error: GET /v1/project was rejected (HTTP 431: its headers are too large): the API key "
        "given is 66,003 characters long; give the key alone (BRAINTRUST_API_KEY by default)\n"
    )


def test_a_key_pasted_where_a_name_goes_is_not_quoted_back(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The error quotes the name it did not find, which is the key itself: the command line hides it.
    done = cli_in_process(capfd, "sync", "--project", emulator.api_key, env=cli_env(emulator, tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("bt-sync: error: no project named or with id *** (projects: none); ")
    assert emulator.api_key not in done.stdout


@pytest.mark.parametrize(
    ("flags", "secret"),
    [
        (["--api-key", "s3cr3t\nkey"], "s3cr3t"),
        (["--api-key", "s3cr3tkeyé"], "s3cr3t"),
        (["--api-url", "http://user:s3cr3tpw@127.0.0.1:99999"], "s3cr3tpw"),
        (["--api-url", "htp://user:s3cr3tpw@host"], "s3cr3tpw"),
    ],
    ids=["newline in key", "non-ascii key", "bad port", "bad scheme"],
)
def test_a_debug_traceback_shows_no_secret(emulator: Emulator, flags: list[str], secret: str) -> None:
    done = run_cli(
        "--debug", "projects", *(["--api-url", emulator.url] if "--api-url" not in flags else []), *flags
    )
    assert done.returncode == 2
    assert "Traceback" in done.stderr and "***" in done.stderr
    assert secret not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # SQLAlchemy reads a password up to the `@`: a `?` in it (or in the user) showed it all.
        ("postgresql+psycopg://bt:s3cr?et99@db:5432/x", "postgresql+psycopg://***@db:5432/x"),
        ("postgresql://us?er:s3cr3tpw@db/x", "postgresql://***@db/x"),
        ("s3://AKIAKEY:s3cr3t/x@bucket/p", "s3://***@bucket/p"),
        # URL parsers split the user part from the host at its last `@` (it showed `***@Secr3tTail77@…`).
        ("http://proxyuser:Xk9@Secr3tTail77@127.0.0.1:19509", "http://***@127.0.0.1:19509"),
        ("http://us@er:p@ss@host/x?e=a@b", "http://***@host/x?e=a@b"),
        ("https://u:s3cr3tpw@host?e=a@b", "https://***@host?e=a@b"),
        # A port, a path and a query holding an `@` are no credentials.
        (
            "GET http://localhost:8181/v1/namespaces?owner=alice@example.com failed",
            "GET http://localhost:8181/v1/namespaces?owner=alice@example.com failed",
        ),
        ("https://host/path?e=a@b", "https://host/path?e=a@b"),
        # No URL holds a quote: a JSON body's URL and an email after it are no user part.
        (
            '{"url":"https://host/x","email":"alice@corp.com"}',
            '{"url":"https://host/x","email":"alice@corp.com"}',
        ),
        ("see ?access_key=AKIAKEY&x-amz-signature=abc ok", "see ?access_key=***&x-amz-signature=*** ok"),
    ],
)
def test_credentials_in_a_uri_are_hidden_and_nothing_else(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert scrub(f"namespace {text} not found", uri_secrets(text)) == f"namespace {shown} not found"


def test_a_short_key_quoted_back_is_hidden_where_it_stands_as_a_word() -> None:
    # Keys under six characters were not hidden at all, to leave the letters of other words alone: in a
    # server's text they are, as words (`k_` too); bt-sync's own words stay whole (a key `API`).
    assert hide_short_secret("key k3y, k3y12 and xk3y", "k3y") == "key ***, k3y12 and xk3y"
    assert hide_short_secret("token k_ (Bearer k_)", "k_") == "token *** (Bearer ***)"
    assert scrub("Check the API key given", ["API"]) == "Check the API key given"
    with Emulator(api_key="k3y12") as emulator:
        echoed = '{"error": "invalid token k3y12"}'
        emulator.faults.add(
            FaultRule(kind="status", route="/v1/project", status=400, body=echoed, times=None)
        )
        done = run_cli("projects", "--api-url", emulator.url, env={"BRAINTRUST_API_KEY": "k3y12"})
    assert done.returncode == 1
    assert "invalid token ***" in done.stderr and "k3y12" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("secret", "code", "said"),
    [
        # httpx takes such a proxy URL as it is: the message showed the password whole (redaction stopped
        # at the blank).
        ("myq7 secret9", 1, "(through the proxy http://***@127.0.0.1:"),
        # httpx refuses it: a traceback.
        ("xq7tab\tsecret9", 2, "the proxy http://***@127.0.0.1:"),
    ],
)
def test_a_proxy_password_holding_blanks_is_hidden(
    demo_emulator: Emulator, secret: str, code: int, said: str
) -> None:
    proxy = f"http://alice:{secret}@127.0.0.1:{free_port()}"
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key, "HTTP_PROXY": proxy, "http_proxy": proxy}
    env |= {"BT_SYNC_MAX_ATTEMPTS": "1", "NO_PROXY": "", "no_proxy": ""}
    done = run_cli("projects", "--api-url", demo_emulator.url, "--json", env=env)
    assert (done.returncode, done.stderr.count("\n")) == (code, 1), done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    assert secret not in done.stdout + done.stderr and secret.split()[0] not in done.stdout + done.stderr


def test_an_api_url_whose_password_holds_a_space_is_refused_without_showing_it(tmp_path: Path) -> None:
    done = run_cli(
        "projects", "--api-url", "https://bob:hunter 22@api.example.com", env={"BRAINTRUST_API_KEY": "k"}
    )
    assert done.returncode == 2 and "holds a space" in done.stderr
    assert "hunter" not in done.stderr


def test_a_secret_quoted_by_json_escaping_its_slashes_is_hidden() -> None:
    # A proxy's page listing the request's headers as PHP writes JSON: its Basic credentials showed.
    basic = "Ym9iOnB3L3g/Pj4="
    assert scrub('{"Proxy-Authorization": "Basic Ym9iOnB3L3g\\/Pj4="}', [basic]) == (
        '{"Proxy-Authorization": "Basic ***"}'
    )


def test_a_key_quoted_percent_encoded_is_hidden() -> None:
    key = "sk-Abc/def+ghi=jkl"
    assert scrub("bad token sk-Abc%2Fdef%2Bghi%3Djkl here", [key]) == "bad token *** here"
    assert scrub("bad token sk-Abc%2fdef%2bghi%3djkl here", [key]) == "bad token *** here"
