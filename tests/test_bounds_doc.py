"""docs/BOUNDS.md stays true: each row's setting exists (in the settings model and in
example_config.ini) and each row names a test that exists."""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest

from mod.config.validator import Settings
from tests.support import ROOT

BOUNDS = ROOT / "docs" / "BOUNDS.md"
SETTING = re.compile(r"\[([A-Z]+)\] ([A-Z_]+)")
TEST = re.compile(r"`(tests/test_\w+\.py)::(\w+)")


def _rows() -> list[list[str]]:
    rows = []
    for line in BOUNDS.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "bound":
            continue
        rows.append(cells)
    return rows


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def test_every_section_has_rows() -> None:
    sections = re.split(r"^## ", BOUNDS.read_text(encoding="utf-8"), flags=re.M)[1:]
    assert sections
    for section in sections:
        title = section.splitlines()[0]
        body = [line for line in section.splitlines() if line.startswith("| ")
                and not line.startswith("| bound ")]
        assert body, f"section {title!r} of docs/BOUNDS.md has no rows"


@pytest.mark.parametrize("row", _rows(), ids=lambda row: row[0][:40])
def test_row(row: list[str]) -> None:
    assert len(row) == 6, f"a row has six cells: {row}"
    bound, _per, setting, default, past, test = row
    assert bound and default and past
    config = configparser.ConfigParser()
    config.read(ROOT / "example_config.ini", encoding="utf-8")
    for section, key in SETTING.findall(setting):
        model = getattr(Settings(), section.lower())
        assert key.lower() in type(model).model_fields, f"{section} {key} is not a setting"
        assert config.has_option(section, key), f"[{section}] {key} not in example_config.ini"
    named = TEST.findall(test)
    assert named, f"row {bound!r} names no test"
    for path, name in named:
        assert (ROOT / path).is_file(), f"{path} does not exist"
        assert name in _test_names(ROOT / path), f"{path} has no {name}"
