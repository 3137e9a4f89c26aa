"""``gnas chaos`` and the edge-of-chaos initialisation, through the real command line."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PNG = b"\x89PNG\r\n\x1a\n"


def gnas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GNAS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "gnas", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_chaos_json_shape_and_png(tmp_path):
    out = tmp_path / "chaos"
    proc = gnas("chaos", "--dataset", "digits", "--max-train-samples", "300", "--samples", "2",
                "--threads", "1", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert 0.0 <= record["lambda_c"] <= 1.0
    assert record["source"] in ("measured", "preset")
    assert record["crossing"] == (record["source"] == "measured") == record["robust"]
    assert record["chromosomes"] == "run" and record["batches"] == 4
    if record["robust"]:
        lo, hi = record["lambda_c_ci"]
        assert lo <= record["lambda_c"] <= hi and hi - lo <= 0.1
    else:
        assert record["reason"].startswith("no robust crossing") and record["lambda_c"] == 0.881
    assert len(record["sweep"]) == 11
    assert [p["lambda"] for p in record["sweep"]] == pytest.approx([k / 10 for k in range(11)])
    assert all(set(p) == {"lambda", "exponent", "std"} for p in record["sweep"])
    assert (out / "chaos.png").read_bytes()[:8] == PNG
    assert json.loads((out / "chaos.json").read_text())["lambda_c"] == record["lambda_c"]


@pytest.mark.parametrize("args, words", [
    (["--points", "2"], "at least 3 points"),
    (["--lambdas", "0,0.5,1.5"], "lambda=1.5"),
    (["--lambdas", "0,-0.2,1"], "lambda=-0.2"),
    (["--langton", "2", "3", "9"], "q=9"),
    (["--max-train-samples", "40"], "fewer than the probe batch"),
    (["--samples", "0"], "at least 1 sample"),
    (["--batches", "0"], "at least 1 input batch"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, words):
    proc = gnas("chaos", "--out", str(tmp_path / "x"), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gnas: error:") and words in lines[0]
    assert "Traceback" not in proc.stderr


def test_chaos_prints_a_progress_line_per_lambda_and_quiet_hides_it(tmp_path):
    args = ["chaos", "--lambdas", "0,0.5,1", "--samples", "2", "--batches", "1", "--batch", "16",
            "--threads", "1", "--max-train-samples", "300", "--out", str(tmp_path)]
    proc = gnas(*args)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gnas:")]
    assert len(lines) == 3
    for k, (line, lam) in enumerate(zip(lines, ["0.00", "0.50", "1.00"]), 1):
        eta = r", about \d+ s left" if k > 1 else ""  # from the second point on, the time left
        assert re.fullmatch(rf"gnas: calibrating lambda_c: lambda {lam} \({k}/3\), \d+ s elapsed{eta} \.\.\.",
                            line), line
    quiet = gnas("-q", *args)
    assert quiet.returncode == 0 and "gnas:" not in quiet.stderr
    assert quiet.stdout == proc.stdout, "-q hides the progress, not the result"


def test_langton_lambda_on_the_command_line():
    proc = gnas("chaos", "--langton", "2", "3", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 2, "d": 3, "q": 2, "T": 8, "lambda": 0.75}


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1.6, 2.5])
def test_theory_lambda_c_is_one_over_sigma_squared(tmp_path, scale):
    """Deep linear masked networks: growth 0.5 log(lambda sigma^2) per layer, lambda_c = 1/sigma^2."""
    proc = gnas("chaos", "--theory", "--weight-scale", str(scale), "--samples", "2", "--batches", "1",
                "--threads", "1",
                "--max-train-samples", "300", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["crossing_at"] == pytest.approx(1.0 / scale, abs=0.05)
    assert record["network"] == "theory" and len(record["lambda_c_ci"]) == 2
    assert record["expected"] == pytest.approx(1.0 / scale)


def _evolve(tmp_path: Path, name: str, *extra: str, stderr: list[str] | None = None) -> dict:
    run = tmp_path / name
    proc = gnas("evolve", "--preset", "tiny", "--generations", "1", "--population", "4",
                "--max-train-samples", "300", "--threads", "1", "--seed", "3", "--set", "evolution.final_seeds=0",
                "--run-dir", str(run), *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if stderr is not None:
        stderr.append(proc.stderr)
    report = gnas("report", str(run), "--json")
    assert report.returncode == 0, report.stderr
    return json.loads(report.stdout)


@pytest.mark.slow
def test_evolve_with_coe_calibrates_and_reports_lambda_c(tmp_path):
    stderr: list[str] = []
    report = _evolve(tmp_path, "coe", stderr=stderr)
    run = tmp_path / "coe"
    progress = [line for line in stderr[0].splitlines() if "calibrating lambda_c" in line]
    assert len(progress) == 11 and re.fullmatch(
        r"gnas: calibrating lambda_c: lambda 1\.00 \(11/11\), \d+ s elapsed, about \d+ s left \.\.\.", progress[-1])
    assert report["init"] == "coe"
    cached = json.loads((run / "chaos.json").read_text())
    assert report["lambda_c"] == pytest.approx(cached["lambda_c"])
    assert report["lambda_c_source"] == cached["source"] in ("measured", "preset")
    assert cached["dataset"] == "digits" and len(cached["sweep"]) == 11 and cached["space"]
    assert cached["chromosomes"] == "run" and cached["samples"] == 32 and "robust" in cached
    assert (run / "chaos.png").read_bytes()[:8] == PNG
    assert all(0.0 <= r["lambda"] <= 1.0 for r in report["logbook"])


@pytest.mark.slow
def test_a_second_run_on_the_same_data_and_space_reuses_the_kept_calibration(tmp_path):
    first_err: list[str] = []
    first = _evolve(tmp_path, "coe", stderr=first_err)
    again_err: list[str] = []
    again = _evolve(tmp_path, "again", stderr=again_err)
    assert any("calibrating lambda_c" in line for line in first_err[0].splitlines())
    assert not any("calibrating lambda_c" in line for line in again_err[0].splitlines())
    assert "as measured by an earlier run" in again_err[0]
    one, two = (json.loads((tmp_path / name / "chaos.json").read_text()) for name in ("coe", "again"))
    assert {k: v for k, v in one.items() if k != "png"} == {k: v for k, v in two.items() if k != "png"}
    assert two["png"].endswith("again/chaos.png") and (tmp_path / "again" / "chaos.png").exists()
    assert again["lambda_c"] == first["lambda_c"]
    assert [r["lambda"] for r in again["logbook"]] == [r["lambda"] for r in first["logbook"]]
    # a damaged kept file is measured afresh, and written again whole
    kept = list(Path(os.environ["GNAS_CACHE_DIR"]).glob("*.json"))
    assert len(kept) == 1
    kept[0].write_text("{damaged")
    third_err: list[str] = []
    _evolve(tmp_path, "third", stderr=third_err)
    assert any("calibrating lambda_c" in line for line in third_err[0].splitlines())
    assert json.loads(kept[0].read_text())["lambda_c"] == one["lambda_c"]


@pytest.mark.slow
def test_evolve_with_random_init_reports_it(tmp_path):
    report = _evolve(tmp_path, "random", "--init", "random")
    assert report["init"] == "random"
    assert report["lambda_c"] == 0.5  # uniform bits: each gene active with probability 1/2
    assert report["lambda_c_source"] == "uniform"
    assert not (tmp_path / "random" / "chaos.json").exists()
    assert 0.2 < report["logbook"][0]["lambda"] < 0.8


@pytest.mark.slow
def test_evolve_with_given_lambda_c_skips_calibration(tmp_path):
    run = tmp_path / "given"
    proc = gnas("evolve", "--preset", "tiny", "--generations", "1", "--population", "2",
                "--max-train-samples", "100", "--threads", "1", "--lambda-c", "0.7", "--set", "evolution.final_seeds=0",
                "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = json.loads((run / "state.json").read_text())
    assert (state["lambda_c"], state["lambda_c_source"]) == (0.7, "config")
    assert not (run / "chaos.json").exists()
