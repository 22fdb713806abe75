import json
import subprocess
import sys

from conftest import one_error_line
from dinoworld.cli import main


def test_info_json(capsys):
    assert main(["info", "--size", "base", "--action-dim", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert round(out["parameters"]["base"] / 1e6) == 86
    assert 20.5e6 < out["parameters"]["action"] < 23e6
    assert out["config"]["depth"] == 12


def test_info_giant_on_meta_is_instant(capsys):
    assert main(["info", "--size", "giant"]) == 0
    assert "1135.6M" in capsys.readouterr().out


def test_user_error_is_one_line(capsys):
    assert main(["info", "--size", "huge"]) == 2
    assert one_error_line(capsys).startswith("error: unknown predictor size")


def test_module_entry_points_know_every_verb():
    # `python -m dinoworld.cli` is what torchrun and the Makefile run; verbs live in several modules
    for entry in (["-m", "dinoworld.cli"], ["-m", "dinoworld"]):
        out = subprocess.run([sys.executable, *entry, "--help"], capture_output=True, text=True)
        for verb in ("info", "train", "encode", "rollout", "demo", "collect", "finetune"):
            assert f"dinoworld {verb} " in out.stdout, (entry, verb, out.stdout[-800:])
    out = subprocess.run([sys.executable, "-m", "dinoworld.cli", "demo", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "example:" in out.stdout and "dinoworld demo" in out.stdout


def test_every_verb_has_help_with_example(capsys):
    import pytest

    from dinoworld.cli import VERBS

    names = [v.name for v in VERBS]
    assert {"info", "train", "encode", "rollout", "demo", "collect", "finetune"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "example:" in capsys.readouterr().out
