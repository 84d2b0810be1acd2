"""The docs stay honest: every setting, endpoint and command the code has is documented, and
every link between the docs leads somewhere."""

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from infrastructure.settings import Settings
from interfaces import cli
from interfaces.api.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_PARAMETER = re.compile(r"\{[^}/]+\}")


def env_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.append(alias.choices[0] if isinstance(alias, AliasChoices) else
                     f"DUECALL_{name.upper()}")
    return [str(name) for name in names]


def endpoints() -> list[str]:
    """"METHOD /path" of every route in the OpenAPI spec, path parameters as {}."""
    spec = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/unused")).openapi()
    return [f"{method.upper()} {_PARAMETER.sub('{}', path)}"
            for path, operations in spec["paths"].items() for method in operations]


@pytest.mark.parametrize("variable", env_names())
def test_every_setting_is_in_the_operations_guide(variable: str) -> None:
    assert f"`{variable}`" in (DOCS / "operations.md").read_text()


@pytest.mark.parametrize("endpoint", endpoints())
def test_every_endpoint_is_in_the_api_guide(endpoint: str) -> None:
    guide = _PARAMETER.sub("{}", (DOCS / "api.md").read_text())
    method, path = endpoint.split(" ")
    # "GET /v1/x" in a table or heading, or "-X POST ... $DUECALL/v1/x" in a curl example
    assert f"{method} {path}`" in guide or f"{method} {path}," in guide, endpoint


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [c.name or (c.callback.__name__ if c.callback else "")
                for c in cli.app.registered_commands]
    groups = [g.name for g in cli.app.registered_groups]
    missing = [name for name in [*commands, *groups] if f"duecall {name}" not in readme]
    assert not missing


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _links() -> list[tuple[Path, str]]:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    return [(page, target) for page in pages
            for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text())
            if not target.startswith(("http://", "https://", "mailto:"))]


@pytest.mark.parametrize(("page", "target"), _links(),
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_links_between_the_docs_lead_somewhere(page: Path, target: str) -> None:
    file, _, anchor = target.partition("#")
    linked = (page.parent / file).resolve() if file else page
    assert linked.exists(), f"{page.name}: {target}"
    if anchor and linked.suffix == ".md":
        headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.MULTILINE)
        assert anchor in {_slug(h) for h in headings}, f"{page.name}: {target}"
