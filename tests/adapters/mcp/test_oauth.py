"""The MCP authorization flow (OAuth 2.1) towards a remote server, against a real OAuth-protected MCP server.

``servers/oauth_server.py`` is built with the SDK's server-side auth (its own
authorization server: dynamic registration, PKCE, expiring access tokens,
rotating refresh tokens). ``tether mcp auth`` runs as the user would run it;
the test is the user's browser: it opens the printed URL and follows the
redirect to the loopback port. Then a real gateway uses the tokens, refreshes
them when they expire, and reports the server down (one line, its tools
denied, the other server still served) when it has no tokens or they are
refused.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import anyio
import httpx2
import pytest
from mcp_helpers import HERE, TETHER, TOY, RawClient, env, run_tether

from tether.adapters.mcp import OAuthSettings, Upstream, load_gateway, oauth_folder
from tether.adapters.mcp._oauth import FileTokenStorage, LoopbackCallback, NeedsAuthorization
from tether.adapters.mcp._oauth_config import oauth_settings, token_path
from tether.errors import ConfigError

OAUTH_SERVER = HERE / "servers" / "oauth_server.py"
POLICY = """
tether: 1
name: oauth
tools:
  remote__echo: {effect: read, args: {text: {type: string}}}
  remote__whoami: {effect: read}
  toy__echo: {effect: read, args: {text: {type: string}}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _oauth_server(port: int, log: Path, ttl: int = 3600, *, sse: bool = False, announced: int | None = None) -> Iterator[None]:
    """The OAuth-protected server on ``port``, until the block ends (its tokens live in its memory only)."""
    extra = {"OAUTH_LOG": str(log), "OAUTH_TOKEN_TTL": str(ttl), "OAUTH_ANNOUNCED_TTL": str(announced or ttl)}
    cmd = [sys.executable, str(OAUTH_SERVER), str(port), *(["--sse"] if sse else [])]
    with open(log.with_suffix(".out"), "a") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env(), **extra}, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 30
            while True:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert proc.poll() is None and time.monotonic() < deadline, log.with_suffix(".out").read_text()
                time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _gateway_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "gateway.json"
    servers = {
        "remote": {"type": "http", "url": f"http://127.0.0.1:{port}/mcp", "auth": {"type": "oauth", "scopes": ["mcp"]}},
        "toy": {"command": sys.executable, "args": [str(TOY)]},
    }
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def _start_auth(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``tether mcp auth ARGS`` started; the authorization URL it prints (its first line on stdout)."""
    proc = subprocess.Popen(
        [*TETHER, "mcp", "auth", *args], env={**os.environ, **env()}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("http://127.0.0.1:"), (line, proc.communicate(timeout=30))
    return proc, line


def _browser(url: str) -> httpx2.Response:
    """The user's browser: open the authorization URL and follow the redirects (to the loopback callback)."""
    return httpx2.get(url, follow_redirects=True, timeout=30)


def _authorize(tmp_path: Path, db: Path, config: Path) -> tuple[str, str]:
    proc, url = _start_auth("remote", "--config", str(config), "--db", str(db), "--timeout", "60")
    page = _browser(url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert page.status_code == 200 and "Tether is authorized" in page.text
    assert "authorized: oauth-toy lists 2 tool(s)" in out, out
    return out, err


def _call(client: RawClient, rid: int, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    client.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": tool, "arguments": args or {}}})
    while True:
        msg = client.read(60)
        if msg.get("id") == rid:
            return dict(msg["result"])


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


def _status(db: Path, name: str) -> dict[str, Any]:
    runs = json.loads(run_tether("mcp", "status", "--db", str(db), "--json").stdout)
    return next(s for s in runs[0]["servers"] if s["name"] == name)


def test_authorize_once_then_the_gateway_uses_refreshes_and_loses_the_tokens(tmp_path: Path) -> None:
    port, db = _free_port(), tmp_path / "t.db"
    events = tmp_path / "oauth.log"
    config = _gateway_file(tmp_path, port)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    with _oauth_server(port, events, ttl=2):
        out, err = _authorize(tmp_path, db, config)
        folder = oauth_folder(str(db))
        assert folder is not None
        files = list(folder.iterdir())
        assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
        stored = json.loads(files[0].read_text())
        secrets = [stored["tokens"]["access_token"], stored["tokens"]["refresh_token"]]
        assert events.read_text().split() == ["register", "authorize", "token"]
        # Setting up uses the same tokens: a starting policy lists the OAuth server's tools.
        started = run_tether("mcp", "policy-init", "--config", str(config), "--db", str(db))
        assert started.returncode == 0 and "remote__whoami:" in started.stdout and "toy__echo:" in started.stdout, started.stderr

        log = tmp_path / "gateway.log"
        with log.open("w") as errors:
            client = RawClient(
                ["--policy", str(policy), "--db", str(db), "--config", str(config), "--restart-backoff", "0.3"], stderr=errors
            )
            try:
                client.initialize()
                who = _call(client, 1, "remote__whoami")
                assert not who.get("isError") and _text(who).endswith(" mcp"), who  # the registered client, scope mcp
                time.sleep(2.5)  # the access token expires: the next call refreshes it first
                assert _text(_call(client, 2, "remote__echo", {"text": "after expiry"})) == "after expiry"
                assert "refresh" in events.read_text().split()
                refreshed = json.loads(files[0].read_text())["tokens"]
                secrets += [refreshed["access_token"], refreshed["refresh_token"]]
                assert refreshed["refresh_token"] != stored["tokens"]["refresh_token"]  # rotated, and kept
            finally:
                assert client.close() == 0
    # No token ever reaches the event log, the gateway's log or what `tether mcp auth` printed.
    logged = db.read_bytes().decode("latin-1") + log.read_text() + out + err
    for wal in tmp_path.glob("t.db-*"):
        if wal.is_file():
            logged += wal.read_bytes().decode("latin-1")
    assert not [s for s in secrets if s in logged]
    assert "Traceback" not in log.read_text()


def test_tokens_refused_or_missing_take_only_that_server_down(tmp_path: Path) -> None:
    port, db = _free_port(), tmp_path / "t.db"
    events = tmp_path / "oauth.log"
    config = _gateway_file(tmp_path, port)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    log = tmp_path / "gateway.log"
    with _oauth_server(port, events):
        # No tokens yet: the remote server is not even connected; the toy server is served.
        with log.open("w") as errors:
            client = RawClient(
                ["--policy", str(policy), "--db", str(db), "--config", str(config), "--restart-backoff", "0.3"], stderr=errors
            )
            try:
                client.initialize()
                assert _text(_call(client, 1, "toy__echo", {"text": "still here"})) == "still here"
                refused = _call(client, 2, "remote__whoami")
                assert refused["isError"] and "the MCP server remote is down" in _text(refused), refused
                assert "not authorized: no OAuth tokens" in _text(refused) and "tether mcp auth remote" in _text(refused)
                remote = _status(db, "remote")
                assert remote["state"] == "down" and "not authorized: no OAuth tokens" in remote["last_error"]
            finally:
                assert client.close() == 0
        assert "register" not in (events.read_text() if events.exists() else "")  # nothing was attempted
        _authorize(tmp_path, db, config)
    # The server restarts and forgets every token it issued: the stored ones are refused, refresh fails.
    with _oauth_server(port, events), log.open("w") as errors:
        client = RawClient(["--policy", str(policy), "--db", str(db), "--config", str(config), "--restart-backoff", "0.3"], stderr=errors)
        try:
            client.initialize()
            assert _text(_call(client, 1, "toy__echo", {"text": "served"})) == "served"
            deadline = time.monotonic() + 60
            while True:  # the remote server's first link ends as soon as the refresh is refused
                remote = _status(db, "remote")
                if remote["state"] == "down":
                    break
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
            assert "not authorized: the server refused the stored OAuth tokens" in remote["last_error"], remote
            denied = _call(client, 2, "remote__echo", {"text": "x"})
            assert denied["isError"] and "not authorized" in _text(denied), denied
            assert _text(_call(client, 3, "toy__echo", {"text": "on"})) == "on"
        finally:
            assert client.close() == 0
    text = log.read_text()
    assert "Traceback" not in text and "not authorized: the server refused" in text


def test_a_token_the_server_refuses_early_is_refreshed_not_fatal(tmp_path: Path) -> None:
    """The server says a token lasts an hour but refuses it after 2 s (a revocation, clocks apart): the proxy
    refreshes once on the 401 instead of needing a person (the SDK alone would start a new authorization)."""
    port, db = _free_port(), tmp_path / "t.db"
    events = tmp_path / "oauth.log"
    config = _gateway_file(tmp_path, port)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    with _oauth_server(port, events, ttl=2, announced=3600):
        _authorize(tmp_path, db, config)
        client = RawClient(["--policy", str(policy), "--db", str(db), "--config", str(config)])
        try:
            client.initialize()
            assert not _call(client, 1, "remote__whoami").get("isError")
            time.sleep(2.5)
            later = _call(client, 2, "remote__echo", {"text": "refreshed on the 401"})
            assert not later.get("isError") and _text(later) == "refreshed on the 401", later
        finally:
            assert client.close() == 0
    assert events.read_text().split().count("refresh") >= 1 and events.read_text().split().count("authorize") == 1


def test_the_agent_loops_mcp_toolset_uses_the_same_tokens(tmp_path: Path) -> None:
    """`tether run`'s MCP toolset reaches an OAuth server with the tokens `tether mcp auth` stored beside its store."""
    from tether import Guard, SQLiteStore
    from tether.adapters.mcp import McpToolset
    from tether.policy import Policy

    port, db = _free_port(), tmp_path / "t.db"
    url = f"http://127.0.0.1:{port}/mcp"
    policy = Policy.from_yaml(
        "tether: 1\nname: p\ntools:\n  whoami: {effect: read}\n  echo: {effect: read, args: {text: {type: string}}}\n"
    )
    with _oauth_server(port, tmp_path / "oauth.log"):
        proc, auth_url = _start_auth("--url", url, "--db", str(db), "--timeout", "60")
        assert _browser(auth_url).status_code == 200
        proc.communicate(timeout=60)
        assert proc.returncode == 0
        store = SQLiteStore(db)
        tools = McpToolset(Upstream(url=url, oauth=OAuthSettings()), store, policy)
        session = Guard(policy, store, detectors=tools.detectors).start_session("Who am I?")

        async def go() -> tuple[list[str], str]:
            async with tools.connected(session):
                return sorted(s.name for s in tools.specs()), await tools.call("whoami", {})

        names, who = anyio.run(go)
    assert names == ["echo", "whoami"] and who.splitlines()[0].endswith(" mcp"), (names, who)


def test_a_lone_oauth_server_without_tokens_is_one_line(tmp_path: Path) -> None:
    port = _free_port()
    policy = tmp_path / "p.yaml"
    policy.write_text("tether: 1\nname: p\ntools: {}\n")
    with _oauth_server(port, tmp_path / "oauth.log"):
        done = subprocess.run(
            [*TETHER, "mcp", "--policy", str(policy), "--db", str(tmp_path / "t.db"), "--url", f"http://127.0.0.1:{port}/mcp", "--oauth"],
            env={**os.environ, **env()}, capture_output=True, text=True, timeout=60, input="",
        )  # fmt: skip
    assert done.returncode == 2, done
    assert "not authorized: no OAuth tokens" in done.stderr and "tether mcp auth --url" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_server_that_asks_for_oauth_without_auth_configured_gets_a_hint(tmp_path: Path) -> None:
    """A client's config has no `auth` for a remote server (the client itself would run OAuth on the 401): the
    proxy says what to configure instead of the SDK's "Server returned an error response"."""
    port = _free_port()
    policy = tmp_path / "p.yaml"
    policy.write_text("tether: 1\nname: p\ntools: {}\n")
    with _oauth_server(port, tmp_path / "oauth.log"):
        client = RawClient(["--policy", str(policy), "--db", str(tmp_path / "t.db"), "--url", f"http://127.0.0.1:{port}/mcp"])
        try:
            client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                         "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})  # fmt: skip
            answer = client.read(60)
        finally:
            client.close()
    message = json.dumps(answer)
    assert "error" in answer and "requires authorization (HTTP 401, OAuth)" in message and "tether mcp auth --url" in message, answer


def test_a_tampered_or_refused_redirect_authorizes_nothing(tmp_path: Path) -> None:
    """The redirect is the attacker's way in (a forged code or state): the SDK checks the state; nothing is stored."""
    port, db = _free_port(), tmp_path / "t.db"
    url = f"http://127.0.0.1:{port}/mcp"
    with _oauth_server(port, tmp_path / "oauth.log"):
        proc, auth_url = _start_auth("--url", url, "--db", str(db), "--timeout", "60")
        location = httpx2.get(auth_url, follow_redirects=False, timeout=30).headers["location"]
        parts = urlsplit(location)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["state"] = "forged-" + query["state"][:8]
        httpx2.get(urlunsplit(parts._replace(query=urlencode(query))), timeout=30)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "State parameter mismatch" in err and "Traceback" not in err, (out, err)
        storage = FileTokenStorage(token_path(oauth_folder(str(db)) or tmp_path, url), url, OAuthSettings(), "http://127.0.0.1:1/callback")
        assert not storage.has_tokens()

        proc, auth_url = _start_auth("--url", url, "--db", str(db), "--timeout", "60")
        callback = parse_qs(urlsplit(auth_url).query)["redirect_uri"][0]
        httpx2.get(callback + "?" + urlencode({"error": "access_denied", "error_description": "the user said no"}), timeout=30)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "the authorization server refused: access_denied (the user said no)" in err, (out, err)
        assert not storage.has_tokens()


def test_oauth_over_the_legacy_sse_transport(tmp_path: Path) -> None:
    """A lone proxy in front of an OAuth-protected SSE server: `tether mcp auth --url --sse`, then `--url --sse --oauth`."""
    port, db = _free_port(), tmp_path / "t.db"
    url = f"http://127.0.0.1:{port}/sse"
    policy = tmp_path / "p.yaml"
    policy.write_text("tether: 1\nname: p\ntools:\n  whoami: {effect: read}\n")
    with _oauth_server(port, tmp_path / "oauth.log", sse=True):
        proc, auth_url = _start_auth("--url", url, "--sse", "--db", str(db), "--timeout", "60")
        assert _browser(auth_url).status_code == 200
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "authorized: oauth-toy lists 2 tool(s)" in out, (out, err)
        client = RawClient(["--policy", str(policy), "--db", str(db), "--url", url, "--sse", "--oauth"])
        try:
            client.initialize()
            who = _call(client, 1, "whoami")
            assert not who.get("isError") and _text(who).endswith(" mcp"), who
        finally:
            assert client.close() == 0


# ---------------------------------------------------------------- configuration and storage


def test_auth_in_gateway_files(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    servers = {
        "a": {"url": "https://a.example/mcp", "auth": "oauth"},
        "b": {"url": "https://b.example/mcp", "auth": {"CLIENT_ID": "tether", "CLIENT_SECRET": "${env:B_SECRET}", "scopes": ["read", "write"]}},
        "c": {"url": "https://c.example/mcp"},
    }  # fmt: skip
    path.write_text(json.dumps({"mcpServers": servers}))
    os.environ["B_SECRET"] = "s3cret"
    try:
        a, b, c = load_gateway(path, warn=lambda _: None)
    finally:
        del os.environ["B_SECRET"]
    assert a.oauth == OAuthSettings() and c.oauth is None
    assert b.oauth is not None and (b.oauth.client_id, b.oauth.client_secret, b.oauth.scopes) == ("tether", "s3cret", "read write")
    assert "s3cret" not in repr(b)  # the secret is never in a representation (logs)
    for bad, reason in (
        ({"command": "x", "auth": "oauth"}, "for URL servers only"),
        ({"url": "https://x/mcp", "auth": "basic"}, "not one Tether speaks"),
        ({"url": "https://x/mcp", "auth": {"type": "oauth", "redirect_port": "80"}}, "must be a port number"),
        ({"url": "https://x/mcp", "auth": {"type": "oauth", "audience": "x"}}, "unknown `auth` key(s) audience"),
    ):
        path.write_text(json.dumps({"servers": {"s": bad}}))
        with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            load_gateway(path, warn=lambda _: None)
    with pytest.raises(ConfigError, match="URL servers only"):
        Upstream(command=("x",), oauth=OAuthSettings())
    assert oauth_settings(None, "s", "f") is None and oauth_settings(False, "s", "f") is None
    assert oauth_folder(":memory:") is None


def test_token_file_keeps_the_expiry_and_only_its_own_url(tmp_path: Path) -> None:
    from mcp.shared.auth import OAuthToken

    url = "https://mcp.example/mcp"
    path = token_path(tmp_path / "oauth", url)
    storage = FileTokenStorage(path, url, OAuthSettings(), "http://127.0.0.1:9/callback")

    async def scenario() -> None:
        assert await storage.get_tokens() is None and await storage.get_client_info() is None
        await storage.set_tokens(OAuthToken(access_token="at", token_type="Bearer", expires_in=60, refresh_token="rt"))
        assert storage.has_tokens() and storage.expires_at is not None and abs(storage.expires_at - time.time() - 60) < 5
        got = await storage.get_tokens()
        assert got is not None and got.refresh_token == "rt"

    anyio.run(scenario)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = FileTokenStorage(path, "https://elsewhere.example/mcp", OAuthSettings(), "http://127.0.0.1:9/callback")
    assert not other.has_tokens()  # a file is only ever read for the URL it was written for
    storage.forget(client=True)
    assert not storage.has_tokens()
    pre = FileTokenStorage(path, url, OAuthSettings(client_id="given", client_secret="s"), "http://127.0.0.1:9/callback")
    info = anyio.run(pre.get_client_info)
    assert info is not None and info.client_id == "given" and info.token_endpoint_auth_method == "client_secret_post"


def test_the_loopback_callback_takes_one_redirect_to_its_path_only() -> None:
    async def scenario() -> None:
        async with LoopbackCallback() as callback:
            base = callback.uri.rsplit("/", 1)[0]
            async with httpx2.AsyncClient() as http:
                assert (await http.get(base + "/elsewhere?code=x&state=y")).status_code == 404
                assert (await http.post(callback.uri, data={"code": "x"})).status_code == 404
                assert (await http.get(callback.uri + "?state=y")).status_code == 400
                assert (await http.get(callback.uri + "?code=c1&state=s1&iss=https%3A%2F%2Fas")).status_code == 200
                assert (await http.get(callback.uri + "?code=c2&state=s2")).status_code == 404  # only the first counts
            result = await callback.wait(5)
            assert (result.code, result.state, result.iss) == ("c1", "s1", "https://as")
        async with LoopbackCallback() as callback:
            with pytest.raises(NeedsAuthorization, match="no redirect came back"):
                await callback.wait(0.2)

    anyio.run(scenario)
