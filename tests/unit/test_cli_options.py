"""The command line's flags: what ``resume`` offers, and ``-v`` / ``-q`` on the gnas logger."""
from __future__ import annotations

import argparse
import logging
import os

import pytest

from gnas.cli import main as cli
from gnas.cli.options import FLAG_KEYS, overrides_from
from gnas.config import RESUMABLE_KEYS, choices_of


@pytest.fixture(autouse=True)
def gnas_logger():
    """The ``gnas`` logger as it was before the test (main() configures it for the process)."""
    logger = logging.getLogger("gnas")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.propagate = saved[0], saved[2]
    logger.setLevel(saved[1])


def sub_parser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def offered(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Option string -> dest of every flag that --help shows."""
    return {opt: a.dest for a in parser._actions if a.help != argparse.SUPPRESS
            for opt in a.option_strings if opt.startswith("--")}


def test_resume_help_offers_only_what_a_resume_accepts():
    flags = offered(sub_parser("resume"))
    assert {"--generations", "--budget", "--workers", "--ray-address", "--threads", "--eval-timeout",
            "--gpus-per-worker", "--data-dir", "--set"} <= set(flags)
    for flag, dest in flags.items():
        if dest in FLAG_KEYS:
            assert FLAG_KEYS[dest].startswith(RESUMABLE_KEYS), f"resume offers {flag}, which it refuses"
    text = sub_parser("resume").format_help()
    assert "--population" not in text and "--epochs" not in text


def test_evolve_still_offers_the_flags_that_define_a_search():
    assert {"--population", "--epochs", "--generations", "--workers"} <= set(offered(sub_parser("evolve")))


def test_every_flag_with_choices_offers_exactly_its_config_keys_choices():
    actions = [a for a in sub_parser("evolve")._actions if a.choices and a.dest in FLAG_KEYS]
    assert {"fidelity", "family", "inherit"} <= {a.dest for a in actions}
    for action in actions:
        assert tuple(action.choices) == choices_of(FLAG_KEYS[action.dest]), action.dest


def test_family_flag_sets_the_search_space_family():
    args = sub_parser("evolve").parse_args(["--family", "conv"])
    assert overrides_from(args)["space.family"] == "conv"


@pytest.mark.parametrize("argv, level", [
    (["datasets"], logging.INFO),
    (["-q", "datasets"], logging.WARNING),
    (["datasets", "-q"], logging.WARNING),
    (["-v", "datasets"], logging.DEBUG),
    (["datasets", "--verbose"], logging.DEBUG),
    (["-q", "datasets", "-v"], logging.DEBUG),  # the last word wins
])
def test_verbosity_sets_the_gnas_logger(argv, level, capsys, monkeypatch):
    before = dict(os.environ)
    assert cli.main(argv) == 0
    logger = logging.getLogger("gnas")
    assert logger.getEffectiveLevel() == level
    assert dict(os.environ) == before  # -q reaches the search as an argument, not through the environment
    capsys.readouterr()
    child = logging.getLogger("gnas.chaos.calibration")
    child.debug("a detail")
    child.info("calibrating")
    child.warning("something odd")
    err = capsys.readouterr().err.splitlines()
    expected = [("gnas: debug: a detail", logging.DEBUG), ("gnas: calibrating", logging.INFO),
                ("gnas: warning: something odd", logging.WARNING)]
    assert err == [line for line, at in expected if at >= level]


def test_verbose_and_quiet_together_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["-v", "-q", "datasets"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not allowed with argument" in err[0]


@pytest.mark.slow
def test_quiet_search_prints_its_summary_and_no_progress(tmp_path):
    """A real one-worker search with -q: no progress bar, no information lines, the summary on stdout."""
    import subprocess
    import sys

    env = {**os.environ, "GNAS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TQDM_DISABLE", None)
    args = ["evolve", "--run-dir", str(tmp_path / "run"), "--generations", "1", "--population", "2",
            "--budget", "2", "--epochs", "1", "--max-train-samples", "200", "--threads", "1",
            "--lambda-c", "0.786", "--set", "evolution.final_seeds=0"]
    loud = subprocess.run([sys.executable, "-m", "gnas", *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert loud.returncode == 0, loud.stderr
    assert "evals [" in loud.stderr, "the progress bar, without -q"
    quiet = subprocess.run([sys.executable, "-m", "gnas", "-q", *args[:2], str(tmp_path / "quiet"), *args[3:]],
                           env=env, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0, quiet.stderr
    assert "evals" not in quiet.stderr and "gnas:" not in quiet.stderr, quiet.stderr
    assert "test score:" in quiet.stdout
