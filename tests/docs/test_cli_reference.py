"""docs/cli.md agrees with the ``upsync`` command itself (its click definitions).

Each ``## `upsync …` `` section names the commands it documents (``upsync syncs list | show ID``
is ``syncs list`` and ``syncs show``). For those commands, every option click knows must appear
in the section, every ``--option`` the section shows must exist (on some command: examples
create a consumer in the ``tail`` section), and a default in an option
table must be the one ``--help`` gives. Every command must have a section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import click
import pytest

import upsync.cli  # noqa: F401  (registers every command on the group)
from tests.docs.markdown import ROOT
from upsync.cli.app import main

CLI_MD = ROOT / "docs" / "cli.md"
GLOBAL = {"--debug", "--config", "--database-url", "--home", "--version", "--help"}
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@dataclass
class Section:
    heading: str
    text: str
    commands: dict[str, click.Command]


def _walk(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            out.update(_walk(command, f"{path} "))
        else:
            out[path] = command
    return out


COMMANDS = _walk(main)


def _commands_of(heading: str) -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for usage in re.findall(r"`upsync ([^`]+)`", heading):
        alternatives = [a.split() for a in usage.split("|")]
        words = alternatives[0]
        group = next(
            " ".join(words[:n]) for n in range(len(words), 0, -1) if " ".join(words[:n]) in COMMANDS
        )
        found[group] = COMMANDS[group]
        parent = group.rsplit(" ", 1)[0] + " " if " " in group else ""
        for alternative in alternatives[1:]:
            path = parent + alternative[0]
            found[path] = COMMANDS[path]
    return found


def _sections() -> list[Section]:
    parts = re.split(r"^## ", CLI_MD.read_text(), flags=re.M)[1:]
    out = []
    for part in parts:
        heading, _, text = part.partition("\n")
        if "`upsync " in heading:
            out.append(Section(heading, text, _commands_of(heading)))
    return out


def _options(command: click.Command) -> dict[str, click.Option]:
    return {
        name: p
        for p in command.params
        if isinstance(p, click.Option)
        for name in p.opts
        if name.startswith("--") and name != "--help" and not p.hidden
    }


@pytest.mark.parametrize("section", _sections(), ids=lambda s: s.heading)
def test_a_section_shows_every_option_and_only_real_ones(section: Section) -> None:
    known = {n: o for c in section.commands.values() for n, o in _options(c).items()}
    shown = set(_OPTION.findall(section.heading + "\n" + section.text))
    missing = sorted(set(known) - shown)
    assert not missing, f"docs/cli.md, {section.heading}: options not documented: {missing}"
    anywhere = {n for c in COMMANDS.values() for n in _options(c)}  # examples use others too
    unknown = sorted(shown - anywhere - GLOBAL)
    assert not unknown, f"docs/cli.md, {section.heading}: no such option(s): {unknown}"


@pytest.mark.parametrize("section", _sections(), ids=lambda s: s.heading)
def test_defaults_in_option_tables_are_the_commands_defaults(section: Section) -> None:
    """A table row ``| `--opt …` | default | meaning |`` says what ``--help`` says."""
    known = {n: o for c in section.commands.values() for n, o in _options(c).items()}
    for name, documented in _default_cells(section.text):
        option = known[name]
        numbers = re.findall(r"-?\d+", documented)
        if _has_default(option):
            assert str(option.default) in documented.replace("`", ""), (name, documented)
        elif numbers:
            help_default = re.search(r"\[default: ([^\]]+)\]", option.help or "")
            assert help_default, f"{name}: the table gives a default, --help gives none"
            assert numbers == re.findall(r"-?\d+", help_default[1]), (
                f"{name}: docs/cli.md says {documented!r}, --help says {help_default[1]!r}"
            )


def _default_cells(text: str) -> list[tuple[str, str]]:
    """``(option, default cell)`` of each table whose second column is ``default``."""
    cells, in_defaults_table = [], False
    for line in text.splitlines():
        escaped = line.strip().strip("|").replace("\\|", "\0")  # a `\|` inside a cell
        columns = [c.strip().replace("\0", "|") for c in escaped.split("|")]
        if not line.startswith("|"):
            in_defaults_table = False
        elif columns[:2] == ["option", "default"]:
            in_defaults_table = True
        elif in_defaults_table and (m := re.match(r"`(--[a-z-]+)", columns[0])):
            cells.append((m[1], columns[1]))
    return cells


def _has_default(option: click.Option) -> bool:
    default = option.default
    unset = getattr(click.core, "UNSET", None)  # click 8.3 marks "no default" with a sentinel
    return default is not None and default is not unset and not isinstance(default, bool)


def test_every_command_has_a_section() -> None:
    documented = {path for s in _sections() for path in s.commands}
    assert sorted(set(COMMANDS) - documented) == []
