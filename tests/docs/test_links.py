"""The documents cite only files that exist: links, and file names in backticks."""

from __future__ import annotations

import re

import pytest

from tests.docs.markdown import ROOT, documents

_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)")
_CITED = re.compile(r"`([\w./-]+\.(?:md|py|toml|json|yaml))`")


def _ids() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in documents()]


@pytest.mark.parametrize("doc", _ids())
def test_relative_links_point_at_files_in_the_repository(doc: str) -> None:
    path = ROOT / doc
    # the README sections kept in docs/ (between markers) link as the README does: from ROOT
    broken = [
        t
        for t in _LINK.findall(path.read_text())
        if not (path.parent / t).exists() and not (ROOT / t).exists()
    ]
    assert broken == [], f"{doc} links to missing files: {broken}"


@pytest.mark.parametrize("doc", _ids())
def test_files_named_in_backticks_exist(doc: str) -> None:
    """``DESIGN.md`` was cited while only a copy outside the repository had it."""
    path = ROOT / doc
    missing = [
        name
        for name in _CITED.findall(path.read_text())
        if not name.startswith("/")  # /etc/upsync.toml, /openapi.json: not repository files
        if "/" in name or name.split(".")[0].isupper()
        if not any((base / name).exists() for base in (ROOT, path.parent, ROOT / "src"))
    ]
    assert missing == [], f"{doc} cites files that are not in the repository: {missing}"
