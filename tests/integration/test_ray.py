"""The Ray executor on real Ray: same answers, contained failures, a two-node cluster.

Every run is tiny (digits, 300 samples, population 4, one generation, one epoch)
and single-threaded per evaluation, so the in-process and the Ray runs train
bit-identical networks. Clusters started here are stopped by process group in
teardown, whatever happened, and never touch a Ray that someone else started.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gnas.config import load_config
from gnas.errors import ClusterError
from gnas.execution.ray_plan import plan_pool, usable_cores, visible_gpus

pytestmark = pytest.mark.ray

TINY = ["--preset", "tiny", "--max-train-samples", "300", "--generations", "1",
        "--threads", "1", "--lambda-c", "0.8", "--seed", "3"]
# Eight individuals, one network per task, so a worker takes its next genome as soon as one finishes and the kill
# finds it busy (with groups its last group may already be done).
# Children inherit their parents' weights: the weights travel with the tasks to the workers.
KILL_RUN = [*TINY, "--population", "8", "--set", "train.group_size=1", "--inherit", "parent"]
# `gnas` that also says whether the driver process built or trained any network itself. It
# runs the command in this process (``main`` would run a Ray search in a child process).
DRIVER = ("import sys; from gnas.cli.main import build_parser; "
          "args = build_parser().parse_args(sys.argv[1:]); code = args.run(args); "
          "print('driver evaluated:', 'gnas.backend.evaluator' in sys.modules, file=sys.stderr); "
          "sys.exit(code)")
# Ray turns token authentication on for a new head node but not for the nodes that
# join it; the loopback-only test cluster runs without it on every process.
CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled"}
RAY_BIN = str(Path(sys.executable).with_name("ray"))


def gnas(*args: str, timeout: float = 240,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gnas", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(env))


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment for a child, without what an in-process Ray driver set in it."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    return {**env, "GNAS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", **(extra or {})}


def rows(run_dir: Path) -> list[dict]:
    con = sqlite3.connect(str(run_dir / "evaluations.db"))
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM evaluations ORDER BY id")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        con.close()


def outcome(run_dir: Path) -> dict:
    """What a run ended with: population, fitness, hall of fame, error of every network."""
    state = json.loads((run_dir / "state.json").read_text())
    errors = {r["genome_key"]: r["val_error"] for r in rows(run_dir) if r["status"] == "ok"}
    return {k: state[k] for k in ("population", "fitness", "hall_of_fame")} | {"errors": errors}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------ one machine
@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> tuple[Path, int, subprocess.CompletedProcess]:
    """A 2-worker run in which one worker's process is SIGKILLed mid-evaluation."""
    run_dir = tmp_path_factory.mktemp("ray") / "run"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "evolve", *KILL_RUN, "--workers", "2",
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    victim = 0
    try:
        deadline = time.monotonic() + 180
        while not victim and proc.poll() is None and time.monotonic() < deadline:
            done = rows(run_dir) if (run_dir / "evaluations.db").exists() else []
            victim = json.loads(done[0]["metrics"]).get("pid", 0) if done else 0
            time.sleep(0.1)
        assert victim, "no evaluation finished before the run ended"
        time.sleep(0.5)  # the worker has taken its next genome by now
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return run_dir, victim, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_killed_worker_is_replaced_and_its_genome_retried(killed_run):
    run_dir, victim, done = killed_run
    assert done.returncode == 0, done.stderr[-2000:]
    table = rows(run_dir)
    retried = [r for r in table if r["attempts"] == 2]
    assert retried and all(r["status"] == "ok" for r in retried)
    assert victim not in {json.loads(r["metrics"]).get("pid") for r in retried}
    assert {r["worker"] for r in table} >= {"ray0.0", "ray1.0"}
    assert all(r["node"].startswith("127.0.0.1/") for r in table)
    assert "driver evaluated: False" in done.stderr


def test_two_workers_end_like_the_in_process_run(killed_run, tmp_path):
    run_dir, _, done = killed_run
    assert done.returncode == 0, done.stderr[-2000:]
    local = gnas("evolve", *KILL_RUN, "--workers", "1", "--run-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr[-2000:]
    assert outcome(run_dir) == outcome(tmp_path / "local")
    assert {r["worker"] for r in rows(tmp_path / "local")} == {"local"}
    assert any(json.loads(r["metrics"]).get("inherited_layers") for r in rows(run_dir))


def test_eval_timeout_fails_the_candidate_and_the_pool_goes_on_recycling():
    from gnas.execution.ray_pool import RayExecutor
    from gnas.records import EvalTask
    from gnas.genome.space import bits_to_str
    from gnas.datasets import load_for_run as load_data
    from gnas.genome.factory import make_space

    cfg = load_config(None, {"parallel.workers": 1, "train.threads": 1, "train.eval_timeout": 0.05,
                             "data.max_train_samples": 300}, preset="tiny")
    dataset = load_data(cfg)
    genome = bits_to_str(make_space(cfg, dataset).random_bits(np.random.default_rng(0)))
    executor = RayExecutor(cfg, dataset)
    try:
        executor.wait_ready()
        start = time.monotonic()
        [result] = list(executor.run([EvalTask(key="k", genome=genome, seed=1)]))
        assert time.monotonic() - start < 30
        assert result.status == "failed" and "timed out" in result.message
        assert result.worker == "ray0.0" and executor.workers()[0]["name"] == "ray0.1"
        executor.cfg = replace(cfg, train=replace(cfg.train, eval_timeout=0.0, group_size=3),
                               parallel=replace(cfg.parallel, recycle_every=1))
        [again] = list(executor.run([EvalTask(key="k", genome=genome, seed=1)]))
        assert again.ok and again.worker == "ray0.1"  # the replacement works
        assert executor.workers()[0]["name"] == "ray0.2"  # recycled after 1 evaluation
        # ray0.2 started with group_size 3: it trains the three tasks as one group
        group = list(executor.run([EvalTask(key=f"g{s}", genome=genome, seed=s) for s in (1, 2, 3)]))
        assert [r.key for r in group] == ["g1", "g2", "g3"]  # one group, trained by one actor
        assert all(r.ok and r.metrics["group"] == 3 and r.worker == "ray0.2" for r in group)
    finally:
        executor.close()


# ------------------------------------------------------------ bad input
def test_plan_refuses_what_ray_cannot_give():
    cfg = load_config(None, {"parallel.workers": 3, "train.threads": 1})
    with pytest.raises(ClusterError, match="needs 3 CPU cores but Ray sees 2"):
        plan_pool(cfg, cores=2)
    with pytest.raises(ClusterError, match="needs 4 CPU cores"):
        plan_pool(load_config(None, {"parallel.workers": 2, "train.threads": 2}), cores=2)
    assert plan_pool(load_config(None, {"parallel.workers": 2}), cores=8).threads == 4
    gpu = load_config(None, {"parallel.workers": 2, "parallel.gpus_per_worker": 0.5})
    with pytest.raises(ClusterError, match="Ray sees none"):
        plan_pool(gpu, cores=2, gpus=0)
    assert plan_pool(gpu, cores=2, gpus=1).gpus_per_worker == 0.5
    with pytest.raises(ClusterError, match="needs 3 GPUs"):
        plan_pool(load_config(None, {"parallel.workers": 3, "parallel.gpus_per_worker": 1.0}),
                  cores=4, gpus=2)


def _bad_inputs() -> list[list[str]]:
    cases = [["--workers", str(usable_cores() + 1), "--threads", "1"],
             ["--workers", "-1"],
             ["--ray-address", f"127.0.0.1:{free_port()}"],
             ["--ray-address", "no-port-here"]]
    if visible_gpus() == 0:
        cases.append(["--workers", "2", "--threads", "1", "--gpus-per-worker", "0.5"])
    return cases


@pytest.mark.parametrize("flags", _bad_inputs(), ids=lambda f: " ".join(f))
def test_bad_parallel_input_exits_2_in_seconds(flags, tmp_path):
    start = time.monotonic()
    done = gnas("evolve", "--preset", "tiny", *flags, "--run-dir", str(tmp_path / "run"), timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert time.monotonic() - start < 30
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gnas: error:"), done.stderr


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_local_ray_that_cannot_start_is_one_line_and_loses_nothing(tmp_path):
    """Ray's own start failing (here: its temp directory lies under a file) is exit 2, one line."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    broken = {"RAY_TMPDIR": str(blocker / "ray")}
    run = tmp_path / "run"
    assert gnas("evolve", *TINY, "--run-dir", str(run)).returncode == 0
    before = _files(run)
    for args in (["evolve", *TINY, "--workers", "2", "--run-dir", str(tmp_path / "fresh")],
                 ["resume", str(run), "--generations", "2", "--workers", "2", "--threads", "1"]):
        done = gnas(*args, env=broken, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
        assert lines[0].startswith("gnas: error: cannot start a local Ray"), lines[0]
    assert _files(run) == before, "a resume that could not start Ray changed the run directory"


# ------------------------------------------------------------ two nodes
@pytest.fixture(scope="module")
def two_node_cluster():
    """A head and a worker node on this machine (one CPU each), each with its own resource."""
    temp = Path(tempfile.mkdtemp(prefix="gnasray"))  # short: Ray's socket paths are limited
    port = free_port()
    head = ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
            "--resources", '{"head_node": 1}', "--include-dashboard", "false",
            "--ray-client-server-port", str(free_port())]
    worker = ["--address", f"127.0.0.1:{port}", "--resources", '{"worker_node": 1}']
    nodes: list[subprocess.Popen] = []
    try:
        for flags in (head, worker):
            nodes.append(_start_node(flags, temp))
        yield f"127.0.0.1:{port}"
    finally:
        _stop_nodes(nodes)
        shutil.rmtree(temp, ignore_errors=True)


def _start_node(flags: list[str], temp: Path) -> subprocess.Popen:
    """``ray start --block`` in its own process group; returns once the node runs."""
    node = subprocess.Popen([RAY_BIN, "start", "--block", "--num-cpus", "1", "--num-gpus", "0",
                             "--temp-dir", str(temp), "--disable-usage-stats",
                            "--dashboard-agent-listen-port", str(free_port()), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(CLUSTER_ENV), start_new_session=True)
    deadline = time.monotonic() + 120
    seen: list[str] = []
    for line in node.stdout:
        seen.append(line)
        if "Ray runtime started" in line or time.monotonic() > deadline:
            break
    if node.poll() is not None or time.monotonic() > deadline:
        _stop_nodes([node])
        raise RuntimeError(f"ray start {' '.join(flags)} failed:\n{''.join(seen[-20:])}")
    return node


def _stop_nodes(nodes: list[subprocess.Popen]) -> None:
    """SIGTERM each node's process group (its own, by id), then SIGKILL what is left."""
    for node in nodes:
        _signal_group(node, signal.SIGTERM)
    for node in nodes:
        try:
            node.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(node, signal.SIGKILL)
        node.wait()


def _signal_group(node: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(node.pid, signum)
    except ProcessLookupError:
        pass


def test_a_run_on_a_two_node_cluster_uses_both_nodes(two_node_cluster, tmp_path):
    done = gnas("evolve", *TINY, "--workers", "2", "--ray-address", two_node_cluster,
                "--run-dir", str(tmp_path / "run"), env=CLUSTER_ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Ray cluster at" in done.stderr
    table = rows(tmp_path / "run")
    assert table and all(r["status"] == "ok" for r in table)
    assert len({r["node"] for r in table}) == 2
    assert (tmp_path / "run" / "best" / "model.keras").stat().st_size > 0


# ------------------------------------------------------------ Ray dies under the run
# As small as a run can be: two networks per generation, no final re-seeding.
AGENT_RUN = ["--preset", "tiny", "--max-train-samples", "200", "--generations", "1",
             "--population", "2", "--threads", "1", "--lambda-c", "0.8", "--seed", "3",
             "--set", "evolution.final_seeds=0"]


def _psutil():
    """psutil, which finds Ray's processes: Ray ships its own copy when none is installed."""
    try:
        import psutil
    except ImportError:  # Ray puts its copy on the path only when it is imported
        import importlib.util

        sys.path.append(str(Path(importlib.util.find_spec("ray").origin).parent / "thirdparty_files"))
        import psutil
    return psutil


def _descendants(pid: int) -> list:
    psutil = _psutil()
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _dashboard_agent(pid: int):
    """The Ray dashboard agent started under process ``pid`` (None while there is none)."""
    psutil = _psutil()

    for proc in _descendants(pid):
        try:
            if any(arg.endswith("dashboard/agent.py") for arg in proc.cmdline()):
                return proc
        except psutil.Error:
            pass
    return None


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every socket that processes ``pids`` listen on."""
    psutil = _psutil()

    return [(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]


def _loopback(ip: str) -> bool:
    import ipaddress

    address = ipaddress.ip_address(ip)
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None)
                                       and address.ipv4_mapped.is_loopback)


def kill_the_agent(run_dir: Path, *flags: str) -> tuple[subprocess.CompletedProcess, list, list, list]:
    """A Ray run whose dashboard agent is killed once the search began: the finished command,
    what listened, what the supervisor mapped, and the Ray processes it had."""
    proc = subprocess.Popen([sys.executable, "-m", "gnas", "evolve", *AGENT_RUN, "--workers", "2",
                             "--run-dir", str(run_dir), *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    left: list = []
    try:
        deadline = time.monotonic() + 120
        agent = None
        # state.json is first written once Ray has started and the search begins.
        while (agent is None or not (run_dir / "state.json").exists()) and proc.poll() is None:
            assert time.monotonic() < deadline, "Ray's dashboard agent never started"
            agent = agent or _dashboard_agent(proc.pid)
            time.sleep(0.05)
        assert agent is not None, proc.communicate()
        left = _descendants(proc.pid)
        listening = _listening({p.pid for p in left})
        mapped = [m.path for m in _psutil().Process(proc.pid).memory_maps()]
        agent.kill()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for leftover in left:  # whatever of that Ray outlived its driver
            try:
                leftover.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), left, listening, mapped


@pytest.mark.slow
def test_killed_dashboard_agent_ends_in_one_line_and_the_advised_resume_finishes(tmp_path):
    """The raylet dies with its agent and Ray ends the driver from C++: still one line, exit 2."""
    run_dir = tmp_path / "run"
    done, _, listening, mapped = kill_the_agent(run_dir, "--set", "parallel.restarts=0")
    proc, err = done, done.stderr
    # The README's word on the local Ray: no web dashboard, nothing beyond the loopback address.
    assert listening and all(_loopback(ip) for ip, _ in listening), listening
    assert 8265 not in {port for _, port in listening}
    assert mapped and not [path for path in mapped if "_raylet" in path], "the supervisor loaded Ray"
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("gnas: error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err[-3000:]
    assert "Ray's processes died" in errors[0]
    advised = errors[0].split("`")[1]
    assert advised == f"gnas resume {run_dir}"
    assert not (run_dir / "gnas.lock").exists()
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]
    resumed = gnas(*advised.split()[1:], "--workers", "0")  # the advice, followed, in-process
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "state.json").read_text())["finished"] is True


@pytest.mark.slow
def test_a_run_whose_ray_died_resumes_by_itself_and_ends_as_the_uninterrupted_one(tmp_path):
    """parallel.restarts (2): the supervisor resumes the run on a new Ray, one line saying so."""
    run_dir = tmp_path / "run"
    done, _, _, _ = kill_the_agent(run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "gnas: error:" not in done.stderr
    said = [line for line in done.stderr.splitlines() if "from its last checkpoint" in line]
    assert len(said) == 1 and said[0].startswith("gnas: the search process ended abruptly"), done.stderr[-3000:]
    assert "(1 restart(s) left after this one)" in said[0]
    assert json.loads((run_dir / "state.json").read_text())["finished"] is True
    assert "best architecture:" in done.stdout and not (run_dir / "gnas.lock").exists()
    local = gnas("evolve", *AGENT_RUN, "--workers", "1", "--run-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr[-2000:]
    assert outcome(run_dir) == outcome(tmp_path / "local")
