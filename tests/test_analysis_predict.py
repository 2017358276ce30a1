"""``failmodes predict``: a cross-validated logistic regression of a mode on inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pytest_failmodes.analysis.predict import input_features, predict_failure
from pytest_failmodes.analysis.report_data import Outcomes
from pytest_failmodes.cli import main


def _data(signal: bool, n: int = 300, seed: int = 0) -> Outcomes:
    rng = random.Random(seed)
    meta, fails = [], []
    for i in range(n):
        lang = rng.choice(["en", "es", "de"])
        tier = rng.choice(["gold", "basic"])
        p = (0.6 if lang == "es" else 0.1) if signal else 0.25
        meta.append({"lang": lang, "tier": tier, "task": f"k{i % 30}"})
        fails.append(rng.random() < p)
    return Outcomes("m", [str(i) for i in range(n)], fails, [""] * n, meta)


def test_planted_risk_is_found_with_a_high_auc() -> None:
    p = predict_failure(_data(True), ["lang", "tier"])
    assert p.auc is not None and p.auc > 0.7  # the best possible here is about 0.79
    assert p.top[0][0] == "lang=es" and p.top[0][1] > 0
    assert len(p.auc_folds) == 5


def test_noise_gives_an_auc_near_one_half_and_says_so() -> None:
    p = predict_failure(_data(False), ["lang", "tier"], groups="task")
    assert p.auc is not None and 0.35 < p.auc < 0.65
    assert any("barely predict" in w for w in p.warnings)


def test_input_features() -> None:
    assert input_features("Hola, ¿dónde está 12?") == {
        "input.chars": 21.0, "input.words": 4.0, "input.has_digits": 1.0, "input.non_ascii": pytest.approx(3 / 21)}


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _data(True, 200)
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"id": t, "input": "q" * (i % 7), "output": "x", "failed": int(f), **m})
                            + "\n" for i, (t, f, m) in enumerate(zip(out.ids, out.fails, out.metadata))))
    assert main(["predict", str(path), "--outcome", "failed", "--fields", "lang,tier", "--groups", "task"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("mode failed: ") and "grouped by task: AUC 0." in first
    assert main(["predict", str(path), "--outcome", "failed", "--groups", "tsk"]) == 2
    assert "field 'tsk' is in no trace; did you mean 'task'?" in capsys.readouterr().err
