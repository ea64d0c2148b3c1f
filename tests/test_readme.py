"""The README's walk-through works as written, top to bottom, on a fresh database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, ServerProcess

README = (ROOT / "README.md").read_text()
SET_UP = (
    "python manage.py --db create",
    "python manage.py superuser-create --login admin --username Admin --password 's3cret'",
    "FLOW=$(python manage.py --table flow --title Lobby)",
)


def shell_blocks() -> list[list[str]]:
    return [[line for line in block.splitlines() if line.strip()]
            for block in re.findall(r"```sh\n(.*?)```", README, re.S)]


def walk_through() -> list[str]:
    """The commands of the block the README introduces as the walk-through."""
    intro = README.index("A walk-through on a fresh database")
    block = README.index("```sh\n", intro) + len("```sh\n")
    return [line for line in README[block:README.index("```", block)].splitlines()
            if line.strip()]


def command(line: str) -> str:
    """A README line as a shell command (comments dropped, `python` is the test's)."""
    code = re.sub(r"\s+#.*$", "", line)
    return code.replace("python manage.py", f"{sys.executable} {ROOT / 'manage.py'}")


def test_the_set_up_lines_are_the_readmes() -> None:
    lines = {re.sub(r"\s+#.*$", "", line) for block in shell_blocks() for line in block}
    for line in SET_UP:
        assert line in lines, line


def test_the_walk_through_works_as_written(tmp_path: Path) -> None:
    database = tmp_path / "morelia.db"
    port_env = {"MORELIA_DATABASE_URI": f"sqlite:{database}"}
    with ServerProcess(tmp_path, env=port_env) as server:
        env = {**os.environ, **port_env, "MORELIA_SERVER_PORT": str(server.port)}
        env.pop("MORELIA_CONFIG", None)
        lines = [*SET_UP, *walk_through()]
        script = ["set -u"]
        for line in lines:
            script.append(command(line))
            script.append('echo "$?" >> rc')
        result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
    codes = [int(code) for code in (tmp_path / "rc").read_text().split()]
    assert len(codes) == len(lines), result.stderr
    outcome = dict(zip(lines, codes, strict=True))
    # The bare `testclient send` is answered 401 (it logs in as nobody): the server is up.
    bare = next(line for line in lines if command(line).endswith("testclient send"))
    assert outcome.pop(bare) == 1, result.stdout
    failed = {line: code for line, code in outcome.items() if code != 0}
    assert not failed, (failed, result.stdout[-4000:], result.stderr[-4000:])
    assert '"text": "Hi all"' in result.stdout
