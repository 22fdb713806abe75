from dataclasses import dataclass, field

import pytest

from dinoworld.config import load_config, parse_overrides
from dinoworld.errors import UserError


@dataclass
class Inner:
    lr: float = 1e-4
    steps: int = 10


@dataclass
class Stage:
    steps: int = 1
    resolution: int = 224


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    stages: list[Stage] = field(default_factory=lambda: [Stage()])
    maybe: str | None = None


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  steps: 5\nname: run\n")
    cfg = load_config(Outer, p, ["inner.lr=3e-4", "stages=[{steps: 7, resolution: 448}]", "maybe=hi"])
    assert cfg.inner == Inner(lr=3e-4, steps=5) and cfg.name == "run" and cfg.maybe == "hi"
    assert cfg.stages == [Stage(7, 448)]
    assert isinstance(cfg.inner.lr, float)


def test_unknown_key_and_bad_type_are_errors():
    with pytest.raises(UserError, match="inner.lrr"):
        load_config(Outer, None, ["inner.lrr=1"])
    with pytest.raises(UserError, match="inner.steps"):
        load_config(Outer, None, ["inner.steps=abc"])
    with pytest.raises(UserError, match="key.sub=value"):
        parse_overrides(["novalue"])


def test_shipped_configs_load_and_paper_defaults():
    from pathlib import Path

    from dinoworld.train import TrainConfig

    root = Path(__file__).resolve().parents[1] / "configs"
    for f in sorted(root.glob("*.yaml")):
        load_config(TrainConfig, f)
    d = TrainConfig()  # the paper's recipe is the default (App. A.2)
    assert (d.optim.lr, d.optim.warmup_steps, d.optim.weight_decay, d.optim.batch_size) == (1e-4, 5000, 0.4, 1024)
    assert [(s.steps, s.resolution) for s in d.stages] == [(300_000, 224), (50_000, 448)]
    assert d.data.num_frames == 8 and d.model.encoder == "dinov2-b14-reg"
