"""Bad input, table-driven over every verb: numbers out of range, config fields out of range, output
folders that cannot be written, faults of the operating system. Each case exits 2 with one line on
stderr and writes nothing."""

import argparse
import errno
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import one_error_line
from dinoworld.cli import build_parser, main
from dinoworld.cli.common import nonneg_float, nonneg_int, positive_float, positive_int
from dinoworld.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

#: the fewest arguments each verb parses with (the values are never used: parsing fails first)
MINIMAL = {
    "info": [], "train": [], "demo": [], "encode": ["videos", "--out", "o"], "collect": ["--env", "wall", "--out", "o"],
    "finetune": ["--env", "wall", "--data", "d", "--mode", "scratch"],
    "plan": ["--env", "wall", "--checkpoint", "c", "--data", "d"],
    "rollout": ["v.mp4", "--checkpoint", "c", "--out", "o"],
    "eval physics": ["--dataset", "folder", "--root", "r", "--checkpoint", "c"],
    "eval forecast": ["--dataset", "synthetic", "--root", "r", "--checkpoint", "c"],
    "make-physics-probe": ["--out", "o"], "make-forecast-probe": ["--out", "o"],
}
#: checked types -> the values each must refuse
REFUSED = {positive_int: ["0", "-1"], positive_float: ["0", "-1"], nonneg_int: ["-1"], nonneg_float: ["-1"]}


def _parsers():
    """(command words, parser) of every verb and sub-verb."""
    def walk(parser, words):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield words, parser
        for s in subs:
            for name, p in s.choices.items():
                yield from walk(p, [*words, name])
    yield from walk(build_parser(), [])


def _numeric_cases():
    for words, parser in _parsers():
        for a in parser._actions:
            if a.type in REFUSED:
                for bad in REFUSED[a.type]:
                    flag = a.option_strings[0]
                    yield pytest.param(words, flag, bad, id=f"{' '.join(words)} {flag}={bad}")


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_every_verb_is_covered_and_no_number_goes_unchecked():
    verbs = {" ".join(w) for w, _ in _parsers()}
    assert verbs == set(MINIMAL)
    loose = [(" ".join(w), a.dest) for w, p in _parsers() for a in p._actions if a.type in (int, float)]
    assert loose == [], f"give these options a checked type from dinoworld.cli.common: {loose}"


@pytest.mark.parametrize("words,flag,bad", list(_numeric_cases()))
def test_numbers_out_of_range_are_one_line(words, flag, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main([*words, *MINIMAL[" ".join(words)], f"{flag}={bad}"])
    assert e.value.code == 2
    line = one_error_line(capsys)
    assert flag in line and bad in line and ("integer" in line or "number" in line)
    assert _listing(tmp_path) == []


def _config_cases():
    """Every range a config dataclass states, with a value just outside it."""
    import dataclasses

    def walk(cls, prefix):
        for name, check in getattr(cls, "CHECKS", {}).items():
            for bad in (0, -1, "nonsense", []):
                try:
                    if check(bad) is None:
                        continue
                except TypeError:
                    continue
                yield prefix + name, bad
                break
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
                yield from walk(f.type, f"{prefix}{f.name}.")

    import typing

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from walk(hints[f.name], f"{f.name}.")
    yield from walk(TrainConfig, "")


def test_every_numeric_config_field_states_its_range():
    import dataclasses
    import typing

    from dinoworld.train.config import Stage

    def numeric(cls):
        hints = typing.get_type_hints(cls)
        return {f.name for f in dataclasses.fields(cls) if hints[f.name] in (int, float)} - {"seed"}

    classes = [TrainConfig, Stage, *(typing.get_type_hints(TrainConfig)[f.name] for f in dataclasses.fields(TrainConfig)
                                      if dataclasses.is_dataclass(typing.get_type_hints(TrainConfig)[f.name]))]
    missing = {c.__name__: sorted(numeric(c) - set(getattr(c, "CHECKS", {}))) for c in classes}
    assert all(not m for m in missing.values()), missing


@pytest.mark.parametrize("key,bad", [*_config_cases(), ("stages", "[{steps: 0, resolution: 56}]"),
                                     ("optim.lr", "[1"), ("model.predictor", "{depth: [")])
def test_config_values_out_of_range_are_one_line(key, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    value = bad if isinstance(bad, str) else repr(bad)
    assert main(["train", f"{key}={value}", "out_dir=run"]) == 2
    line = one_error_line(capsys)
    assert key.split(".")[-1] in line or "YAML" in line
    assert _listing(tmp_path) == []


def test_a_config_file_that_is_not_yaml_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("optim:\n  lr: [1\n")
    assert main(["train", "--config", "bad.yaml", "out_dir=run"]) == 2
    assert "not valid YAML at line" in one_error_line(capsys)
    assert _listing(tmp_path) == ["bad.yaml"]


#: every verb that writes, with its output option pointed under a regular file (root ignores
#: permission bits, so a file in the way is what stops it on any machine)
UNWRITABLE = {
    "train": ["train", "--config", str(ROOT / "configs" / "tiny-cpu.yaml"), "out_dir=FILE/run"],
    "encode": ["encode", "videos", "--out", "FILE/cache", "--encoder", "pixel-pyramid"],
    "collect": ["collect", "--env", "wall", "--episodes", "2", "--out", "FILE/data"],
    "finetune": ["finetune", "--env", "wall", "--data", "d", "--mode", "scratch", "--out", "FILE/run"],
    "plan": ["plan", "--env", "wall", "--checkpoint", "c", "--data", "d", "--out", "FILE/plan"],
    "rollout": ["rollout", "v.mp4", "--checkpoint", "c", "--out", "FILE/rollout"],
    "demo": ["demo", "--out", "FILE/demo"],
    "eval physics": ["eval", "physics", "--dataset", "folder", "--root", "r", "--checkpoint", "c", "--out", "FILE/o"],
    "eval forecast": ["eval", "forecast", "--dataset", "synthetic", "--root", "r", "--checkpoint", "c",
                      "--out", "FILE/o"],
    "eval forecast --heads": ["eval", "forecast", "--dataset", "synthetic", "--root", "r", "--checkpoint", "c",
                              "--heads", "FILE/heads"],
    "make-physics-probe": ["make-physics-probe", "--out", "FILE/probe"],
    "make-forecast-probe": ["make-forecast-probe", "--out", "FILE/fprobe"],
    "a name too long": ["collect", "--env", "wall", "--episodes", "2", "--out", "x" * 300],
}


@pytest.mark.parametrize("case", list(UNWRITABLE))
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("a regular file\n")
    before = _listing(tmp_path)
    assert main(UNWRITABLE[case]) == 2
    line = one_error_line(capsys)
    assert ("FILE" in line and "not a folder" in line) or "longer than 255" in line
    assert _listing(tmp_path) == before


def test_every_writing_verb_is_in_the_unwritable_table():
    writers = {" ".join(w) for w, p in _parsers() if any(a.dest in ("out", "heads") for a in p._actions)}
    assert writers | {"train"} <= set(UNWRITABLE)


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "disk is full"), (errno.ENAMETOOLONG, "too long"),
                                        (errno.EROFS, "cannot write"), (errno.EIO, "Input/output")])
def test_a_fault_of_the_operating_system_is_one_line(code, words, tmp_path, monkeypatch, capsys):
    import dinoworld.model

    def fail(model):
        raise OSError(code, os.strerror(code), str(tmp_path / "out" / "rollout.png"))

    monkeypatch.setattr(dinoworld.model, "count_parameters", fail)  # any verb: info is the cheapest
    assert main(["info", "--size", "tiny"]) == 2
    line = one_error_line(capsys)
    assert words in line
    if code == errno.ENOSPC:
        assert "rollout.png" in line and "MiB free on" in line


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import torch

    from dinoworld.model.folder import CheckpointMeta
    from dinoworld.train import checkpoint as ck

    meta = CheckpointMeta(predictor={"dim": 8})
    first = ck.save_checkpoint(tmp_path, 1, {"w": torch.zeros(2)}, meta, {"step": 1})

    def full(obj, path):  # what torch's zip writer raises when a write comes up short
        Path(path).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed; unexpected pos 579456 vs 579348")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(ck.shutil, "disk_usage", lambda p: SimpleNamespace(total=1, used=1, free=0))
    with pytest.raises(OSError) as e:
        ck.save_checkpoint(tmp_path, 2, {"w": torch.ones(2)}, meta, {"step": 2})
    assert e.value.errno == errno.ENOSPC and e.value.filename.endswith("train_state.pt")
    assert ck.complete_checkpoints(tmp_path) == [first]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [first.name]  # no temporary folder left


def test_device_cuda_without_a_gpu_is_one_line(monkeypatch):
    import torch

    from dinoworld.cli.common import pick_device
    from dinoworld.errors import UserError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(UserError, match="not a torch device"):
        pick_device("gpu0")
    assert pick_device("cpu") == "cpu"
