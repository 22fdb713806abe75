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
