"""`duecall tenants ...`: tenants, API keys and signing secrets, straight on the database.

For the operator of the service (the admin API does the same over HTTP). A key is printed
once, when it is issued; only a hash of it is kept.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from application.tenants import IssuedKey, Tenants
from domain.errors import DomainError
from interfaces.cli_support import JsonOption, console, local_container

app = typer.Typer(help="Tenants, API keys and signing secrets.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="The tenant's name.")]
KeyIdArg = Annotated[str, typer.Argument(help="The key's id (see `duecall tenants list`).")]
RateOption = Annotated[
    float | None, typer.Option(help="Requests a second with this key (default: the server's).")
]
BurstOption = Annotated[int | None, typer.Option(help="Requests at once with this key.")]
GraceOption = Annotated[
    float, typer.Option("--grace-hours", help="Hours the old key or secret keeps working.", min=0)
]
DEV_TENANT = "dev"


@contextmanager
def _tenants() -> Iterator[Tenants]:
    """The tenants' use cases on the configured database; a refusal is one sentence."""
    container = local_container()
    try:
        yield container.tenants
    except DomainError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    finally:
        container.close()


def _print_issued(issued: IssuedKey, as_json: bool) -> None:
    if as_json:
        console.print_json(
            data={"tenant": issued.tenant, "key_id": issued.api_key.key_id, "key": issued.key}
        )
        return
    console.print(f"API key for tenant [bold]{issued.tenant}[/] (shown once; keep it safe):")
    console.print(issued.key, style="bold green", soft_wrap=True)


@app.command()
def create(
    name: NameArg,
    rate_per_second: RateOption = None,
    burst: BurstOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a tenant and print its first API key."""
    with _tenants() as tenants:
        _print_issued(tenants.create(name, rate_per_second, burst), as_json)


@app.command("list")
def list_tenants(as_json: JsonOption = False) -> None:
    """Every tenant and its keys (prefixes only)."""
    with _tenants() as tenants:
        found = tenants.all()
    if as_json:
        console.print_json(
            data=[
                {"name": t.name, "keys": [k.as_dict() for k in t.keys.values()]} for t in found
            ],
            default=str,
        )
        return
    table = Table("tenant", "key id", "prefix", "created", "expires", "revoked")
    for tenant in found:
        for key in sorted(tenant.keys.values(), key=lambda k: k.created_at):
            table.add_row(
                tenant.name, key.key_id, key.prefix, f"{key.created_at:%Y-%m-%d %H:%M}",
                f"{key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else "",
                f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
            )
    console.print(table)


@app.command("issue-key")
def issue_key(
    name: NameArg,
    rate_per_second: RateOption = None,
    burst: BurstOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue another API key for a tenant."""
    with _tenants() as tenants:
        _print_issued(tenants.issue_key(name, rate_per_second, burst), as_json)


@app.command("rotate-key")
def rotate_key(
    name: NameArg, key_id: KeyIdArg, grace_hours: GraceOption = 24.0, as_json: JsonOption = False
) -> None:
    """Issue a key to replace KEY_ID; KEY_ID keeps working for the grace period."""
    with _tenants() as tenants:
        _print_issued(tenants.rotate_key(name, key_id, timedelta(hours=grace_hours)), as_json)


@app.command("revoke-key")
def revoke_key(name: NameArg, key_id: KeyIdArg) -> None:
    """Revoke a key: it stops working within a second."""
    with _tenants() as tenants:
        tenants.revoke_key(name, key_id)
    console.print(f"revoked key {key_id} of tenant {name}")


@app.command("signing-secrets")
def signing_secrets(name: NameArg, as_json: JsonOption = False) -> None:
    """The secrets a tenant's targets verify signatures with (newest first)."""
    with _tenants() as tenants:
        _print_secrets(tenants.signing_secrets(tenants.get(name)), as_json)


@app.command("rotate-signing-secret")
def rotate_signing_secret(
    name: NameArg, grace_hours: GraceOption = 24.0, as_json: JsonOption = False
) -> None:
    """A new signing secret; requests carry both signatures for the grace period."""
    with _tenants() as tenants:
        _print_secrets(tenants.rotate_signing_secret(name, timedelta(hours=grace_hours)), as_json)


def _print_secrets(secrets: list[str], as_json: bool) -> None:
    if as_json:
        console.print_json(data={"secrets": secrets})
        return
    for secret in secrets:
        console.print(secret, soft_wrap=True)


def ensure_dev_key(tenants: Tenants, key_file: Path) -> str | None:
    """For local use: create the ``dev`` tenant on first start and keep its key in
    ``key_file`` (mode 0600), so every later start can show it again; None if the tenant
    exists but the file is gone."""
    if tenants.find(DEV_TENANT) is None:
        issued = tenants.create(DEV_TENANT)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(issued.key + "\n")
    return key_file.read_text().strip() if key_file.exists() else None
