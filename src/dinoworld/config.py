"""Typed configs: nested dataclasses, YAML files and dotted command-line overrides.

``load_config(TrainConfig, "configs/tiny.yaml", ["optim.lr=3e-4", "stages=[{steps: 10, resolution: 56}]"])``
starts from the dataclass defaults (the paper's settings), applies the YAML file, then the
overrides. Values are parsed as YAML; an unknown key, a value of the wrong type or out of its
range is an error that names the key and what it accepts. A dataclass states its ranges in a
``CHECKS`` class attribute: ``{"lr": above(0), "schedule": one_of("constant", "cosine")}``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from .errors import UserError

T = TypeVar("T")

#: a range check: the value -> what the key accepts, or None when the value is fine
Check = Callable[[Any], "str | None"]


def above(lo: float) -> Check:
    return lambda v: None if v > lo else f"a number > {lo:g}"


def at_least(lo: float) -> Check:
    return lambda v: None if v >= lo else f"a number >= {lo:g}"


def between(lo: float, hi: float, hi_open: bool = False) -> Check:
    def check(v):
        ok = lo <= v < hi if hi_open else lo <= v <= hi
        return None if ok else f"a number in [{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return check


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"one of {', '.join(choices)}"


def not_empty(v: Any) -> str | None:
    return None if len(v) else "at least one item"


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Refuse a field of dataclass ``cfg`` outside the range its class's ``CHECKS`` states."""
    for name, check in getattr(type(cfg), "CHECKS", {}).items():
        value = getattr(cfg, name)
        items = value if isinstance(value, (list, tuple)) and check is not not_empty else [value]
        for v in items:
            want = check(v)
            if want:
                raise UserError(f"config key {prefix + name!r} must be {want}, got {value!r}")


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
    out = dataclasses.replace(cfg, **changes)
    check_ranges(out, prefix)
    return out


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
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            where = getattr(err, "problem", None) or type(err).__name__
            raise UserError(f"override {item!r}: the value is not valid YAML ({where}); write lists and "
                            "mappings whole and quoted, e.g. \"stages=[{steps: 10, resolution: 56}]\"") from None
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls`` <- YAML file ``path`` <- dotted ``overrides``."""
    cfg = cls()
    if path:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark else ""
            raise UserError(f"config file {p} is not valid YAML{at} ({getattr(err, 'problem', err)}); fix it") from None
        if not isinstance(data, dict):
            raise UserError(f"config file {p} must contain a mapping at the top level")
        cfg = merge(cfg, data)
    if overrides:
        cfg = merge(cfg, parse_overrides(overrides))
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-JSON/YAML form of a dataclass config."""
    return dataclasses.asdict(cfg)
