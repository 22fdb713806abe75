"""The README, docs/ and results/ stay true to the repository: relative links resolve, every config and
benchmark script a page names exists, the README stays short, results are placed by date and commit
(never by work periods), and the commands the docs mark as cheap (```` ```bash cheap ````) run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 220

#: results files announced in the docs whose measurements are written separately; a link to one of
#: these counts as resolved while the file is still missing (delete an entry once its file exists)

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"\[[^\]\n]*\]\(([^()\s]+)\)")
CONFIG_PATH = re.compile(r"configs/[\w./-]+?\.ya?ml\b")
SCRIPT_PATH = re.compile(r"benchmarks/[\w./-]+?\.(?:py|sh)\b")
WORK_PERIOD = re.compile(r"\bsessions?\b", re.I)


def pages() -> list[Path]:
    """README.md, docs/*.md and results/*.md."""
    return [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "results").glob("*.md"))]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(info string, body)`` of every fenced code block."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text without its fenced code blocks (links there are code, not links)."""
    return FENCE.sub("", text)


def broken_links(page: Path) -> list[str]:
    """Relative link targets of ``page`` (anchors stripped) that name no existing file or folder."""
    bad = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):  # http:, mailto:, anchors
            continue
        if not (page.parent / target.split("#", 1)[0]).exists():
            bad.append(target)
    return bad


def missing_named_files(text: str, root: Path = ROOT) -> list[str]:
    """``configs/...yaml`` and ``benchmarks/...py|sh`` paths named in ``text`` that do not exist."""
    named = set(CONFIG_PATH.findall(text)) | set(SCRIPT_PATH.findall(text))
    return sorted(p for p in named if not (root / p).is_file())


def command_lines(text: str, cheap_only: bool = False) -> list[str]:
    """The command lines of the ```` ```bash ```` blocks (only ```` ```bash cheap ```` ones with
    ``cheap_only``), backslash continuations joined, comment lines left out."""
    out = []
    for info, body in fenced_blocks(text):
        words = info.split()
        if not words or words[0] != "bash" or (cheap_only and words != ["bash", "cheap"]):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    return out


def cheap_commands(text: str) -> list[str]:
    return command_lines(text, cheap_only=True)


def dinoworld_argv(line: str) -> list[str] | None:
    """The arguments a command line passes to `dinoworld` (also after `VAR=value` prefixes and through
    `torchrun ... -m dinoworld.cli`), or None when the line runs something else."""
    words = shlex.split(line, comments=True)
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words = words[1:]
    if words[:1] == ["dinoworld"]:
        return words[1:]
    if words[:1] == ["torchrun"] and "dinoworld.cli" in words:
        return words[words.index("dinoworld.cli") + 1:]
    return None


# ---------------------------------------------------------------------------- the checks' own tests
def test_the_checks_see_what_they_check(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("x")
    page = tmp_path / "docs" / "page.md"
    page.write_text("[ok](there.md#a) [up](../docs/) [web](https://x.org/a) [gone](nowhere.md) [anchor](#b)\n"
                    "```bash\n[not a link](nowhere-in-code.md)\n```\n")
    assert broken_links(page) == ["nowhere.md"]
    assert missing_named_files("`configs/none.yaml` and benchmarks/none.py", tmp_path) == [
        "benchmarks/none.py", "configs/none.yaml"]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "a.yaml").write_text("")
    assert missing_named_files("--config configs/a.yaml", tmp_path) == []
    word = "ses" + "sion"  # spelled in parts, so that this file does not name a work period itself
    assert WORK_PERIOD.search(f"measured in {word.title()} 6") and WORK_PERIOD.search(f"earlier {word}s'")
    assert not WORK_PERIOD.search("sessionless, obsession")
    text = ("```bash cheap\ndinoworld info \\\n  --size tiny   # a comment\n\n# skipped\n```\n"
            "```bash\ndinoworld demo\n```\n")
    assert cheap_commands(text) == ["dinoworld info    --size tiny   # a comment"]


# ------------------------------------------------------------------------------------- the pages
def test_there_are_docs_and_results():
    names = [_name(p) for p in pages()]
    assert sum(n.startswith("docs/") for n in names) >= 5
    assert any(n.startswith("results/") for n in names)


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_relative_links_resolve(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_named_configs_and_scripts_exist(page):
    assert missing_named_files(page.read_text()) == []


def test_every_results_file_names_a_committed_command():
    """A result rests on a config under configs/, a script under benchmarks/ or a `dinoworld` / `make` command."""
    bare = [_name(p) for p in sorted((ROOT / "results").glob("*.md"))
            if not re.search(r"configs/\S+\.ya?ml|benchmarks/\S+\.(?:py|sh)|\bdinoworld \w|\bmake \w", p.read_text())]
    assert bare == []


def test_the_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ or results/"


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_results_are_placed_by_date_and_commit_not_by_work_periods(page):
    hits = [line for line in page.read_text().splitlines() if WORK_PERIOD.search(line)]
    assert hits == []


def test_every_documented_command_parses():
    """The long commands are not run here (tests/test_story.py runs the same verbs end to end at tiny
    sizes), but each `dinoworld` line of every bash block must parse: its verb and flags exist, and its
    config file and overrides load."""
    from dinoworld.cli import build_parser
    from dinoworld.config import load_config
    from dinoworld.train import TrainConfig

    parser, bad, seen = build_parser(), [], 0
    for page in pages():
        for line in command_lines(page.read_text()):
            argv = dinoworld_argv(line)
            if argv is None:
                continue
            seen += 1
            try:
                args = parser.parse_args(argv)
                if getattr(args, "verb", None) in ("train", "finetune"):
                    config = getattr(args, "config", None)
                    load_config(TrainConfig, config and str(ROOT / config), list(args.overrides))
            except (SystemExit, Exception) as err:  # any failure is a broken command
                bad.append(f"{_name(page)}: {line} ({type(err).__name__}: {err})")
    assert seen >= 40 and bad == []


# ---------------------------------------------------------------------------------- cheap commands
CHEAP = [p for p in pages() if cheap_commands(p.read_text())]


def test_the_docs_mark_cheap_commands():
    assert len(CHEAP) >= 5 and sum(len(cheap_commands(p.read_text())) for p in CHEAP) >= 10


@pytest.mark.parametrize("page", CHEAP, ids=_name)
def test_cheap_commands_run(page, tmp_path, monkeypatch, capsys):
    """Each page's cheap blocks, top to bottom, in one empty folder that sees the repository's configs/."""
    from dinoworld.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    for line in cheap_commands(page.read_text()):
        words = shlex.split(line, comments=True)
        assert words and words[0] == "dinoworld", f"a cheap command must start with `dinoworld`: {line}"
        try:
            code = main(words[1:])
        except SystemExit as stop:  # --help
            code = stop.code or 0
        out, err = capsys.readouterr()
        assert code == 0, (line, err[-2000:])
