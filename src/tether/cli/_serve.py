"""``tether serve``: the oversight service (HTTP API and web UI) over one store, and its tokens (kept in the store)."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.markup import escape

from tether.cli._common import console, db_option, err_console, open_store
from tether.server import TokenBook, TokenError, import_token_file, tokens_path

FIRST_TOKEN = "admin"
"""The name of the token created when the service first starts."""


@contextmanager
def _book(db: str, *, create: bool = True) -> Iterator[TokenBook]:
    """The tokens of the store at ``db`` (opened, created if need be and ``create``, and closed
    after); a token file of an older Tether beside it is imported first, once (said on stderr)."""
    store = open_store(db, must_exist=not create)
    try:
        book = TokenBook(store)
        path = tokens_path(db)
        try:
            imported = import_token_file(book, path)
        except TokenError as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise SystemExit(2) from None
        if imported is not None:
            err_console.print(
                f"imported {imported} token(s) from {escape(str(path))} into the store; the file is no longer read "
                "(tokens now live in the store: delete the file)",
                soft_wrap=True,
            )
        elif path.is_file():
            err_console.print(
                f"[yellow]warning:[/] the token file {escape(str(path))} is not read: the store already holds tokens "
                "(a file is imported only into a store that never held one); create what is missing with "
                "'tether serve token create' and delete the file",
                soft_wrap=True,
            )
        yield book
    finally:
        store.close()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.group(invoke_without_command=True)
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless you say otherwise).")
@click.option("--port", default=8321, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Another Host header name to answer to (repeatable).")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes on the port (any serves any session)."
)
@click.option("--cache-size", default=256, show_default=True, type=click.IntRange(1), help="Sessions each worker keeps folded in memory.")
@click.pass_context
def serve(ctx: click.Context, db: str, host: str, port: int, allow_hosts: tuple[str, ...], workers: int, cache_size: int) -> None:
    """Serve the oversight API (/api/, spec at /api/openapi.json) and web UI for the store.

    Every route needs a token. The first start creates one named 'admin' (an overseer) and prints
    it once; make more with 'tether serve token create NAME [--role agent --principal P]'. Agents
    that run elsewhere use the guard API (/api/guard/) with an agent token."""
    if ctx.invoked_subcommand is not None:
        return
    with _book(db) as book:
        try:
            first = None if book.list() else book.create(FIRST_TOKEN)
        except TokenError as exc:
            if book.list():  # another service over the same store made the first token at the same time
                first = None
            else:
                err_console.print(f"[red]error:[/] {escape(str(exc))}")
                raise SystemExit(2) from None
    from tether.server.web import serve as run_server  # needs the 'serve' extra

    if first is not None:
        console.print(f"first start: token [bold]{first}[/] (named {FIRST_TOKEN!r}; shown once, kept hashed in the store)")
    if not _loopback(host):
        err_console.print(
            f"[yellow]warning:[/] listening on {escape(host)}, not loopback: anyone who can reach it and holds a token can act"
        )
    console.print(
        f"Tether oversight on http://{escape(host if ':' not in host else f'[{host}]')}:{port}/ (store {escape(db)})", soft_wrap=True
    )
    if workers > 1:
        console.print(f"{workers} worker processes")
    run_server(db, host=host, port=port, extra_hosts=allow_hosts, workers=workers, cache_size=cache_size)


@serve.group()
def token() -> None:
    """Create, list and revoke the service's access tokens (kept hashed in the store: every worker sees a change at once)."""


@token.command("create")
@db_option
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["overseer", "agent"]),
    default="overseer",
    show_default=True,
    help="overseer: everything the UI can do; agent: run sessions through the guard API only (never answer asks).",
)
@click.option("--principal", default=None, help="Bind an agent token to one principal's sessions.")
def token_create(db: str, name: str, role: str, principal: str | None) -> None:
    """Create a token NAME (who holds it: logged as who answered or stopped) and print it once."""
    try:
        with _book(db) as book:
            value = book.create(name, role="agent" if role == "agent" else "overseer", principal=principal)
    except TokenError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    click.echo(value)


@token.command("revoke")
@db_option
@click.argument("name")
def token_revoke(db: str, name: str) -> None:
    """Revoke the token NAME (every running worker refuses it from its next request)."""
    try:
        with _book(db, create=False) as book:
            done = book.revoke(name)
    except TokenError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    if not done:
        err_console.print(f"[red]error:[/] no token named {escape(repr(name))}")
        raise SystemExit(1)
    console.print(f"token {escape(repr(name))} revoked")


@token.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token.")
def token_list(db: str, as_json: bool) -> None:
    """List the tokens' names and creation times (the tokens themselves are not kept)."""
    try:
        with _book(db, create=False) as book:
            tokens = book.list()
    except TokenError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    for t in tokens:
        if as_json:
            doc = {"name": t.name, "role": t.role, "principal": t.principal, "created": t.created, "sha256_prefix": t.digest[:12]}
            click.echo(json.dumps(doc, ensure_ascii=False))
            continue
        bound = f" for {escape(repr(t.principal))}" if t.principal is not None else ""
        console.print(
            f"{escape(t.name)}  {t.role}{bound}  created {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(t.created))}  sha256 {t.digest[:12]}…"
        )
    if not tokens and not as_json:
        console.print("no tokens")
