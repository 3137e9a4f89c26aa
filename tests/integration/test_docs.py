"""The documentation stays true: the configuration page is the generated one, and every
``gnas`` command written in the README or docs/ is accepted by the command line.

A command is checked through the CLI's own parser (flags, choices, types) and, for
``gnas evolve`` and ``gnas resume``, through the configuration it would run with
(every ``--set`` key and value, the preset, the flags' ranges). Nothing is run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shlex
from pathlib import Path

import pytest

from gnas import config_reference
from gnas.cli.main import build_parser
from gnas.cli.options import overrides_from
from gnas.config import RESUMABLE_KEYS, RunConfig, load_config
from gnas.errors import GnasError

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Pages the index links that other work adds; a link to one of them may precede the page.
PAGES_IN_PROGRESS = {"running.md", "reliability.md", "data.md", "nb201.md",
                     "docs/running.md", "docs/reliability.md", "docs/data.md", "docs/nb201.md"}

# What marks a synopsis (`gnas evolve [--dataset D]`, `--mask a|b`) rather than a command.
SYNOPSIS = re.compile(r"[\[\]|…]|\.\.\.")


def test_configuration_page_is_the_generated_one():
    page = ROOT / "docs" / "configuration.md"
    assert page.exists() and page.read_text() == config_reference.markdown(), (
        f"docs/configuration.md differs from gnas/config.py's field docs; regenerate it with "
        f"`{config_reference.REGENERATE}`")


def test_every_config_key_has_a_doc():
    """Every key of every section says what it does, so the generated page explains it."""
    missing = [f"{section.name}.{key.name}" for section in dataclasses.fields(RunConfig)
               for key in dataclasses.fields(section.default_factory)  # type: ignore[arg-type]
               if not key.metadata.get("doc")]
    assert not missing, f"config keys without doc= in gnas/config.py: {', '.join(missing)}"


def _commands(text: str) -> list[str]:
    """``gnas ...`` command lines: in fenced blocks, and inline code spans that are not synopses.

    An inline span of two words (`gnas report`) names a sub-command, checked by
    :func:`test_named_commands_exist`; a longer one is a command.
    """
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("gnas ") or part == "gnas":
                    found.append(part)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`(gnas [^`]+)`", prose):
        if not SYNOPSIS.search(span) and len(span.split()) > 2:  # `gnas report` names the command
            found.append(span.strip())
    return found


def _all_commands() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), command)
            for page in PAGES for command in dict.fromkeys(_commands(page.read_text()))]


COMMANDS = _all_commands()


def test_the_pages_hold_commands():
    """The extraction finds the README's search command and commands in docs/ (so the check checks)."""
    pages = {page for page, _ in COMMANDS}
    assert ("README.md", "gnas evolve") in COMMANDS
    assert any(page.startswith("docs/") for page in pages), pages


def check_command(command: str) -> str:
    """'' if the CLI accepts ``command`` and the configuration it names is valid, else why not."""
    words = shlex.split(command)[1:]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(words)
    except SystemExit as exc:
        return "" if exc.code == 0 else err.getvalue().strip() or f"exit {exc.code}"
    if args.command not in ("evolve", "resume"):
        return ""
    try:
        overrides = overrides_from(args)
        load_config(None, overrides, preset=getattr(args, "preset", None))
    except GnasError as exc:
        return str(exc)
    fixed = [key for key in overrides if args.command == "resume" and not key.startswith(RESUMABLE_KEYS)]
    return f"a resume refuses {', '.join(fixed)}" if fixed else ""


def test_named_commands_exist():
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    named = {(page.relative_to(ROOT).as_posix(), name) for page in PAGES
             for name in re.findall(r"`gnas ([a-z-]+)`", page.read_text())}
    unknown = sorted(f"{page}: gnas {name}" for page, name in named if name not in subcommands)
    assert not unknown, f"no such sub-command: {'; '.join(unknown)}"


@pytest.mark.parametrize("page,command", COMMANDS, ids=[f"{p}: {c}" for p, c in COMMANDS])
def test_documented_command_is_accepted(page, command):
    assert check_command(command) == "", f"{page}: `{command}`"


def test_named_experiment_scripts_exist():
    named = {(page.relative_to(ROOT).as_posix(), script) for page in PAGES
             for script in re.findall(r"experiments/(\w+\.py)", page.read_text())}
    missing = sorted(f"{page}: experiments/{script}" for page, script in named
                     if not (ROOT / "experiments" / script).is_file())
    assert named and not missing, f"no such script: {'; '.join(missing)}"


def test_links_between_pages_resolve():
    """Every relative link of the README and docs/ names a file that is there (or one being written)."""
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists() and target not in PAGES_IN_PROGRESS:
                broken.append(f"{page.relative_to(ROOT).as_posix()} -> {target}")
    assert not broken, "broken links: " + "; ".join(broken)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as '-'."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_anchors_resolve():
    broken = []
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", page.read_text()):
            linked = page.parent / target if target else page
            if linked.exists() and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(ROOT).as_posix()} -> {target}#{anchor}")
    assert not broken, "links to missing headings: " + "; ".join(broken)


def test_the_check_refuses_a_wrong_command():
    """The check can fail: an unknown flag, a bad choice and an unknown --set key are caught."""
    assert "unrecognized" in check_command("gnas evolve --generatons 3")
    assert "invalid choice" in check_command("gnas evolve --strategy bayes")
    assert "evolution.populaton" in check_command("gnas evolve --set evolution.populaton=3")
    assert "out of range" in check_command("gnas resume runs/x --set parallel.workers=-1")
    assert "refuses train.epochs" in check_command("gnas resume runs/x --set train.epochs=2")
    assert check_command("gnas evolve --fidelity sha --inherit parent") == ""
