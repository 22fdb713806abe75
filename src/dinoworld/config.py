"""Typed configs: nested dataclasses, YAML files and dotted command-line overrides.

``load_config(TrainConfig, "configs/tiny.yaml", ["optim.lr=3e-4", "stages=[{steps: 10, resolution: 56}]"])``
starts from the dataclass defaults (the paper's settings), applies the YAML file, then the
overrides. Values are parsed as YAML; an unknown key or a value of the wrong type is an error
that names the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import UserError

T = TypeVar("T")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"bad value for {key}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r} expects a mapping, got {value!r}")
        return merge(tp(), value, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {key!r} expects a list, got {value!r}")
        item = args[0] if args else Any
        out = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r} expects a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
        try:
            return float(value)
        except ValueError:
            raise UserError(f"config key {key!r} expects a number, got {value!r}") from None
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise UserError(f"config key {key!r} expects {tp.__name__}, got {value!r}")
    return value


def merge(cfg: T, updates: dict[str, Any], prefix: str = "") -> T:
    """A copy of dataclass ``cfg`` with nested ``updates`` applied (unknown key = error)."""
    hints = typing.get_type_hints(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}
    changes = {}
    for k, v in updates.items():
        if k not in names:
            raise UserError(f"unknown config key {prefix + k!r}; known keys: {', '.join(sorted(names))}")
        current = getattr(cfg, k)
        if dataclasses.is_dataclass(current) and isinstance(v, dict):
            changes[k] = merge(current, v, prefix=f"{prefix}{k}.")
        else:
            changes[k] = _coerce(hints[k], v, prefix + k)
    return dataclasses.replace(cfg, **changes)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` -> ``{"a": {"b": 1}, "c": [1, 2]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls`` <- YAML file ``path`` <- dotted ``overrides``."""
    cfg = cls()
    if path:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file {p} does not exist")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise UserError(f"config file {p} must contain a mapping at the top level")
        cfg = merge(cfg, data)
    if overrides:
        cfg = merge(cfg, parse_overrides(overrides))
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-JSON/YAML form of a dataclass config."""
    return dataclasses.asdict(cfg)
