"""The configuration reference, written from the config's own field metadata.

Each key of :class:`gnas.config.RunConfig` declares its default, range or choices
and a one-line ``doc`` next to it; this module turns them into the Markdown page
``docs/configuration.md``, so the page lists every key, as the code accepts it,
and cannot drift from it (a test compares the two). Regenerate the page with::

    python -m gnas.config_reference > docs/configuration.md
"""
from __future__ import annotations

import dataclasses
import re
import sys
from typing import Any

import tomli_w

from gnas.config import PRESETS, RESUMABLE_KEYS, RunConfig

REGENERATE = "python -m gnas.config_reference > docs/configuration.md"

INTRO = """\
# Configuration

<!-- Generated from gnas/config.py; do not edit. Regenerate with:
     {regenerate} -->

A run's settings are the keys below, in sections. They come, in this order, from the
defaults, a preset (`gnas evolve --preset paper`; the presets end this page), a TOML
file (`gnas evolve --config my.toml`), the command's own flags and
`--set section.key=value`. From Python,
`gnas.evolve(..., generations=3)` takes a key by its own name and
`config={{"section.key": value}}` takes any key (a name that several sections share
must be given that way).

An unknown key, a value of the wrong type, or one outside its range or choices is
refused in one line that names the key and what is allowed; so is an
`evolution.elite` not below `evolution.population`, a `space.max_depth` above the
number of stages in `space.stage_nodes`, or a `fidelity.min_epochs` above
`fidelity.max_epochs`. The resolved configuration of a run is its `config.toml`.

```toml
[evolution]
population = 10
generations = 5

[fidelity]
schedule = "sha"
```

A resume may change only the keys marked *resume*: how long the search runs and where
and how fast it evaluates (`gnas resume RUN --set parallel.workers=4`). Every other key
defines the search, and a resume refuses a change to it in one line that names the key.
"""


def _toml_value(value: Any) -> str:
    """A value as it is written in a TOML file (tuples as one-line arrays, strings quoted)."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _type_name(default: Any) -> str:
    if isinstance(default, tuple):
        return f"list of {type(default[0]).__name__}"
    return type(default).__name__


def _allowed(meta: dict[str, Any], default: Any) -> str:
    """The key's choices or inclusive range, as the refusal message states it."""
    if meta.get("choices"):
        return ", ".join(f"`{c}`" for c in meta["choices"])
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None and hi is None:
        return ""
    bound = f"{lo} … {hi}" if lo is not None and hi is not None else (
        f"≥ {lo}" if lo is not None else f"≤ {hi}")
    return f"each {bound}" if isinstance(default, tuple) else bound


def _cell(text: str) -> str:
    """Text for a table cell: no line breaks, pipes escaped, Sphinx roles as code."""
    text = re.sub(r":\w+:`([^`]*)`", r"`\1`", text)
    return text.replace("|", "\\|").replace("\n", " ")


def section_table(name: str, section: type) -> list[str]:
    """One section: its heading, its docstring's first line and a row per key."""
    lines = [f"## [{name}]", "", _cell((section.__doc__ or "").strip().splitlines()[0]), "",
             "| key | type | default | allowed | resume | what it does |",
             "|---|---|---|---|---|---|"]
    for f in dataclasses.fields(section):
        key = f"{name}.{f.name}"
        resume = "resume" if key.startswith(RESUMABLE_KEYS) else ""
        lines.append(f"| `{f.name}` | {_type_name(f.default)} | `{_cell(_toml_value(f.default))}` | "
                     f"{_cell(_allowed(dict(f.metadata), f.default))} | {resume} | "
                     f"{_cell(f.metadata.get('doc', ''))} |")
    return lines + [""]


def presets_table() -> list[str]:
    """The presets and the keys each sets."""
    lines = ["## Presets", "", "A preset (`gnas evolve --preset tiny`) starts from these values:", "",
             "| preset | sets |", "|---|---|"]
    for name, values in PRESETS.items():
        sets = ", ".join(f"`{k} = {_toml_value(v)}`" for k, v in values.items()) or "the defaults"
        lines.append(f"| `{name}` | {_cell(sets)} |")
    return lines


def markdown() -> str:
    """The whole reference page: every section of :class:`RunConfig`, then the presets."""
    lines = [INTRO.format(regenerate=REGENERATE)]
    for f in dataclasses.fields(RunConfig):
        lines += section_table(f.name, f.default_factory)  # type: ignore[misc, arg-type]
    lines += presets_table()
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
