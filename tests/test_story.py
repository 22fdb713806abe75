"""The `dinoworld --help` examples are one story: pasted top to bottom, each command reads what an
earlier one wrote. Run it end to end at tiny sizes, each command with --json, whose stdout must be
one JSON object and nothing else."""

import json
import shlex
from pathlib import Path

import pytest

from dinoworld.cli import STORY, main

ROOT = Path(__file__).resolve().parents[1]

#: appended to each story command (later flags and overrides win): sizes that run in seconds
TINY = {
    "info": [],
    "demo": ["--steps", "3", "--train-videos", "2", "--val-videos", "1", "--resolution", "28"],
    "rollout": ["--horizon", "0.5", "--resolution", "28"],
    "make-physics-probe": ["--pairs", "5", "--train", "2", "--size", "56", "--seconds", "2.0"],
    "make-forecast-probe": ["--train", "2", "--head-sequences", "1", "--val-sequences", "2", "--size", "56"],
    "encode": ["--resolution", "56"],
    "train": ["stages=[{steps: 2, resolution: 56}]", "val_every=2", "ckpt_every=2", "progress=false"],
    "eval physics": ["--max-pairs", "2", "--res", "28"],
    "eval forecast": ["--head-steps", "2", "--max-samples", "2"],
    "collect": ["--episodes", "12", "--steps", "30", "--img-size", "28"],
    "finetune": ["stages=[{steps: 2, resolution: 28}]", "val_every=2", "ckpt_every=2", "progress=false",
                 "optim.batch_size=4", "optim.micro_batch_size=4", "--check-batches", "1"],
    "plan": ["--episodes", "2", "--samples", "4", "--iterations", "1", "--topk", "2", "--batch", "2", "--no-oracle"],
}


def _verb(words: list[str]) -> str:
    return " ".join(words[:2]) if words[0] == "eval" else words[0]


def test_the_story_covers_every_verb_once_per_benchmark():
    from dinoworld.cli import VERBS

    verbs = [_verb(shlex.split(line, comments=True)[1:]) for line in STORY]
    assert sorted(verbs) == sorted(TINY) and len(set(verbs)) == len(verbs)
    assert {v.split()[0] for v in verbs} == {v.name for v in VERBS}


@pytest.mark.slow
def test_the_help_story_runs_top_to_bottom(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # the story runs from the repository's root
    for line in STORY:
        words = shlex.split(line, comments=True)[1:]
        argv = [*words, *TINY[_verb(words)], "--json"]
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, (line, err[-2000:])
        assert isinstance(json.loads(out), dict), (line, out[:300])
