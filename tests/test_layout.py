"""The package's structure: imports run downwards, the model stands alone, the CLI surface is pinned,
old checkpoints load. Regenerate the pinned CLI surface after a deliberate change with
``python tests/test_layout.py --update-cli-surface``."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[1] / "src" / "dinoworld"
DATA = Path(__file__).resolve().parent / "data"
CLI_SURFACE = DATA / "cli_surface.json"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Module -> dinoworld modules it imports anywhere in the file (function-level imports included:
    a lazy import hides a cycle, it does not remove it)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # `from pkg import sub` imports the submodule
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_the_graph_sees_imports_and_cycles():
    g = import_graph()
    assert "dinoworld.model.folder" in g["dinoworld.model.world_model"]  # relative `from .folder import`
    assert "dinoworld.cli.collect" in g["dinoworld.cli"]  # `from . import collect`
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_only_the_cli_imports_the_cli():
    """The entry layer is ``dinoworld.cli`` and ``python -m dinoworld`` (``__main__``); nothing else imports it."""
    offenders = [m for m, deps in import_graph().items()
                 if not m.startswith("dinoworld.cli") and m != "dinoworld.__main__"
                 and any(d.startswith("dinoworld.cli") for d in deps)]
    assert offenders == []


def test_the_cli_calls_library_entry_points_only():
    """The CLI is thin: it imports no private name (``_x``) of the library, and no CLI module grows past 200 lines."""
    private = []
    for path in (SRC / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:  # ``from ..x import y``: the library
                private += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
        assert len(path.read_text().splitlines()) <= 200, path.name
    assert private == []


def test_no_module_grows_past_450_lines():
    """Modules are split by concern well before this (most stay under 400 lines)."""
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}


def test_lower_layers_do_not_import_higher_ones():
    forbidden = {
        "dinoworld.model": ("dinoworld.train", "dinoworld.data", "dinoworld.envs", "dinoworld.eval"),
        "dinoworld.encoders": ("dinoworld.train", "dinoworld.data", "dinoworld.envs", "dinoworld.model"),
        "dinoworld.data": ("dinoworld.train", "dinoworld.envs", "dinoworld.eval"),
        "dinoworld.envs": ("dinoworld.train", "dinoworld.eval", "dinoworld.model"),
        "dinoworld.eval": ("dinoworld.train",),
    }
    bad = [(m, d) for m, deps in import_graph().items() for room, banned in forbidden.items()
           if m == room or m.startswith(room + ".") for d in deps if d.startswith(banned)]
    assert bad == []


def test_model_imports_nothing_of_training_data_or_envs():
    code = ("import sys, dinoworld.model; from dinoworld.model import WorldModel, ActionSpace, load_predictor; "
            "print([m for m in sys.modules if m.startswith(('dinoworld.train', 'dinoworld.data', 'dinoworld.envs', "
            "'dinoworld.cli', 'dinoworld.eval'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ CLI surface
def cli_surface() -> dict[str, list[dict]]:
    from dinoworld.cli import VERBS, build_parser

    def rows(parser: argparse.ArgumentParser, prefix: str, out: dict) -> None:
        items = []
        for a in parser._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            if isinstance(a, argparse._SubParsersAction):  # nested verbs (eval physics, eval forecast)
                for name, p in a.choices.items():
                    rows(p, f"{prefix} {name}", out)
                items.append({"flags": [a.dest], "subcommands": sorted(a.choices)})
                continue
            plain = isinstance(a.default, (int, float, str, bool, type(None)))
            items.append({"flags": list(a.option_strings) or [a.dest], "required": bool(a.required),
                          "nargs": a.nargs, "default": a.default if plain else repr(a.default),
                          "choices": list(a.choices) if a.choices else None})
        out[prefix] = items

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out: dict[str, list[dict]] = {}
    for v in VERBS:
        rows(sub.choices[v.name], v.name, out)
    return out


def test_cli_surface_is_pinned():
    """A change to a verb or flag must be deliberate: update tests/data/cli_surface.json with it."""
    assert cli_surface() == json.loads(CLI_SURFACE.read_text())


def test_verbs_are_typed_records():
    from dinoworld.cli import VERBS, Verb

    assert VERBS and all(isinstance(v, Verb) and callable(v.run) and callable(v.add_args) and v.example for v in VERBS)
    assert len({v.name for v in VERBS}) == len(VERBS)


# -------------------------------------------------------------------------------- old checkpoints
def test_checkpoint_written_before_the_move_loads_and_predicts_the_same():
    """tests/data/checkpoint-v0.1 was written by the code before the re-layering (commit f18e06a)."""
    from dinoworld.model import WorldModel, load_predictor

    folder = DATA / "checkpoint-v0.1"
    probe = torch.load(folder / "probe.pt")
    model, meta = load_predictor(folder)
    # the same up to floating-point rounding: CPU kernels differ between processors, so never bit-exact
    out = model(probe["x"], probe["t"], probe["q"], probe["a"])
    torch.testing.assert_close(out, probe["out"], rtol=1e-4, atol=1e-5)
    assert meta.encoder.name == "pixel-pyramid" and meta.training_resolution == 56 and meta.step == 3
    space = meta.action_space()
    assert space.frameskip == 2 and space.env == "wall" and space.model_dim == 4 == model.cfg.action_dim
    wm = WorldModel.from_pretrained(folder, load_encoder_model=False)
    assert torch.equal(wm.action_space.mean, torch.tensor([0.1, -0.2]))
    assert torch.equal(wm.action_space.std, torch.tensor([0.5, 0.25]))


def test_save_pretrained_round_trips_metadata(tmp_path):
    from dinoworld.model import WorldModel

    wm = WorldModel.from_pretrained(DATA / "checkpoint-v0.1", load_encoder_model=False)
    wm.save_pretrained(tmp_path / "m")
    again = WorldModel.from_pretrained(tmp_path / "m", load_encoder_model=False)
    assert again.meta.split == wm.meta.split and again.meta.action_norm["mean"] == [0.1, -0.2]
    assert again.meta.step is None and again.meta.training_resolution == 56
    for k, v in wm.predictor.state_dict().items():
        assert torch.equal(v, again.predictor.state_dict()[k])


def test_unknown_metadata_keys_survive_a_round_trip():
    from dinoworld.model import CheckpointMeta

    raw = {"format": "dinoworld-predictor/1", "predictor": {"dim": 8}, "encoder": {"name": "x", "future": 1},
           "from_the_future": {"a": 1}}
    meta = CheckpointMeta.from_json(raw)
    assert meta.extra == {"from_the_future": {"a": 1}} and meta.encoder.name == "x"
    assert meta.to_json()["from_the_future"] == {"a": 1}


if __name__ == "__main__" and "--update-cli-surface" in sys.argv:
    CLI_SURFACE.write_text(json.dumps(cli_surface(), indent=1) + "\n")
    print(f"wrote {CLI_SURFACE}")
