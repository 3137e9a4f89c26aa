"""The supervisor of Ray searches, on real child processes that stand in for the search.

Each child is a short Python program that speaks the real protocol
(:class:`gnas.cli.supervisor.ChildReport`) or dies without it; the Ray case
itself runs in tests/integration/test_ray.py.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from gnas.cli.main import _after_environment_error, build_parser
from gnas.cli.supervisor import Supervised, supervise, supervised_command

# Prologue of every child: the report the supervisor reads, and a file that says it runs.
CHILD = """
import os, signal, sys, time
from gnas.cli.supervisor import ChildReport
report = ChildReport()
ready = sys.argv[1]
"""


def run_child(tmp_path: Path, body: str, run_dir: Path | None = None) -> int:
    ready = tmp_path / "ready"
    program = (sys.executable, "-c", CHILD + body)
    return supervise(Supervised([str(ready)], run_dir or tmp_path / "no-run", program))


def a_run(tmp_path: Path) -> Path:
    """A run directory as a dead search leaves it: marker, checkpoint, lock, a temporary file."""
    run = tmp_path / "my run"
    run.mkdir()
    (run / "gnas-run.json").write_text('{"schema_version": 3}')
    (run / "state.json").write_text("{}")
    (run / "gnas.lock").write_text('{"pid": 1}')
    (run / ".state.json.x1y2.tmp").write_text("half")
    return run


def test_a_child_that_dies_without_finishing_gets_one_line_and_a_tidy_run(tmp_path, capsys):
    run = a_run(tmp_path)
    assert run_child(tmp_path, "os._exit(1)", run) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gnas: error:"), err
    assert "exit status 1" in lines[0] and "Ray's processes died" in lines[0]
    assert f"`gnas resume '{run}'`" in lines[0]  # quoted: the path has a space
    assert sorted(p.name for p in run.iterdir()) == ["gnas-run.json", "state.json"]


def test_a_dead_child_is_followed_by_a_resume_of_its_run_while_restarts_are_left(tmp_path, capsys):
    """parallel.restarts: the run is tidied, then resumed in a new child with the same options."""
    run, seen = a_run(tmp_path), tmp_path / "seen"
    body = f"""
if sys.argv[1:3] == ["-q", "resume"]:
    names = sorted(os.listdir(sys.argv[3]))
    open({str(seen)!r}, "a").write(" ".join(sys.argv[1:3]) + " " + ",".join(names) + "\\n")
    if len(open({str(seen)!r}).read().splitlines()) == 1:
        os._exit(1)  # the first resume dies too
    report.finished()
    sys.exit(0)
os._exit(1)
"""
    program = (sys.executable, "-c", CHILD + body)
    command = Supervised(["-q", "evolve", "--run-dir", str(run)], run, program, restarts=2, options=("-q",))
    assert supervise(command) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 2 and all("resuming" in line and "exit status 1" in line for line in lines), lines
    assert "(1 restart(s) left after this one)" in lines[0] and "(0 restart(s)" in lines[1]
    # every resume found the run tidied: no lock, no temporary file
    assert seen.read_text().splitlines() == ["-q resume gnas-run.json,state.json"] * 2
    capsys.readouterr()
    assert supervise(Supervised(["-q", "evolve"], run, (sys.executable, "-c", "import os; os._exit(1)"),
                                restarts=1, options=("-q",))) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 2 and "resuming" in lines[0] and lines[1].startswith("gnas: error:"), lines


def test_a_child_killed_by_a_signal_is_named_and_without_a_run_the_advice_is_to_run_again(
        tmp_path, capsys):
    assert run_child(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)") == 2
    line = capsys.readouterr().err.strip()
    assert "killed by SIGKILL" in line and "run the command again" in line
    assert not (tmp_path / "no-run").exists()


@pytest.mark.parametrize("code", [0, 1, 2])
def test_a_child_that_finished_keeps_its_exit_status_and_its_own_words(tmp_path, capsys, code):
    body = f"print('own words', file=sys.stderr); report.finished(); sys.exit({code})"
    assert run_child(tmp_path, body, a_run(tmp_path)) == code
    assert capsys.readouterr().err == ""  # the child's stderr is the terminal's, not ours
    assert (tmp_path / "my run" / "gnas.lock").exists()  # nothing died: nothing tidied


def test_sigterm_is_forwarded_once_to_a_child_in_its_own_process_group(tmp_path, capsys):
    seen = tmp_path / "seen"
    body = f"""
def stop(signum, frame):
    open({str(seen)!r}, "a").write(f"{{signum}} {{os.getpgid(0) == os.getpid()}}\\n")
    report.finished()
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
open(ready, "w").close()
time.sleep(60)
"""
    ready = tmp_path / "ready"

    def send() -> None:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    sender = threading.Thread(target=send)
    sender.start()
    assert run_child(tmp_path, body) == 143
    sender.join()
    assert seen.read_text() == f"{int(signal.SIGTERM)} True\n"
    assert signal.getsignal(signal.SIGTERM) is before


def test_only_searches_on_ray_are_supervised(tmp_path):
    parse = build_parser().parse_args
    local = parse(["evolve", "--workers", "0"])
    assert supervised_command(local, ["evolve", "--workers", "0"]) is None
    ray = supervised_command(parse(["evolve", "--workers", "2"]), ["evolve", "--workers", "2"])
    assert ray is not None and ray.argv[:3] == ["evolve", "--workers", "2"]
    assert ray.argv[3] == "--run-dir" and Path(ray.argv[4]) == ray.run_dir  # named for both
    assert ray.restarts == 2 and ray.options == ()  # parallel.restarts' default
    quiet = supervised_command(parse(["-q", "evolve", "--workers", "2", "--set", "parallel.restarts=0"]),
                               ["-q", "evolve", "--workers", "2", "--set", "parallel.restarts=0"])
    assert quiet is not None and quiet.restarts == 0 and quiet.options == ("-q",)
    assert quiet.resumed().argv == ["-q", "resume", str(quiet.run_dir)]
    given = supervised_command(parse(["evolve", "--workers=2", "--run-dir=x"]), ["evolve"])
    assert given is not None and given.run_dir == Path("x") and given.argv == ["evolve"]
    assert supervised_command(parse(["evolve", "--population", "1", "--workers", "2"]), []) is None
    assert supervised_command(parse(["resume", str(tmp_path)]), []) is None  # not a run
    assert supervised_command(parse(["datasets"]), ["datasets"]) is None


@pytest.mark.parametrize("words", [["evolve", "--run-dir", "{run}"], ["evolve", "--run-dir={run}"],
                                   ["evolve", "--run-d={run}"], ["resume", "--workers", "0", "{run}"]])
def test_disk_full_advice_is_the_same_for_every_spelling_of_the_run(tmp_path, words):
    run = a_run(tmp_path)
    args = build_parser().parse_args([w.format(run=run) for w in words])
    assert _after_environment_error(args) == f"then continue it with `gnas resume '{run}'`"
    args = build_parser().parse_args([w.format(run=tmp_path / "new") for w in words])
    assert _after_environment_error(args) == "then run the command again"


def test_a_sigterm_keeps_its_status_when_ray_raises_a_plain_keyboard_interrupt(monkeypatch):
    """Ray's wait and get replace the interrupt they catch by a bare KeyboardInterrupt."""
    from gnas.errors import Terminated
    from gnas.runs import interrupts

    monkeypatch.setitem(interrupts._deferral, "raised", None)
    assert interrupts.interrupt_exit_code(KeyboardInterrupt()) == 130
    interrupts.note_interrupt(Terminated(signal.SIGTERM))
    assert interrupts.interrupt_exit_code(KeyboardInterrupt()) == 143
    assert interrupts.interrupt_exit_code(Terminated(signal.SIGHUP)) == 129


# A supervisor in a process of its own, so that Ctrl-Z can stop it without stopping pytest.
PARENT = """
import sys
from pathlib import Path
from gnas.cli.supervisor import Supervised, supervise
body = sys.argv[1]
sys.exit(supervise(Supervised(sys.argv[2:], Path("no-run"), (sys.executable, "-c", body))))
"""


def _state(pid: int) -> str:
    """The kernel's one-letter state of process ``pid`` (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_ctrl_z_stops_the_child_with_the_supervisor_and_fg_continues_both(tmp_path):
    import subprocess

    ready, go = tmp_path / "ready", tmp_path / "go"
    body = CHILD + f"""
open(ready, "w").write(str(os.getpid()))
while not os.path.exists({str(go)!r}):
    time.sleep(0.02)
report.finished()
"""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, body, str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.02)
        child = int(ready.read_text())

        def both_become(stopped: bool) -> bool:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if all((_state(pid) == "T") == stopped for pid in (parent.pid, child)):
                    return True
                time.sleep(0.02)
            return False

        parent.send_signal(signal.SIGTSTP)
        assert both_become(stopped=True)
        parent.send_signal(signal.SIGCONT)
        assert both_become(stopped=False)
        go.touch()
        assert parent.wait(timeout=30) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
