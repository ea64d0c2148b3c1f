"""Run every benchmark of bench/ one after another and print their figures.

    python bench/run_all.py

Each script starts the servers it needs on free loopback ports. The cross-process push figure
needs MORELIA_TEST_POSTGRES_URI and MORELIA_TEST_REDIS_URI (PostgreSQL and Redis to use).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("mtp_bench.py", "push_bench.py", "matrix_bench.py", "matrix_routing_bench.py",
           "web_bench.py", "media_bench.py", "thumbnail_bench.py", "search_bench.py")


def main() -> int:
    failed = 0
    for script in SCRIPTS:
        print(f"== python bench/{script}", flush=True)
        result = subprocess.run([sys.executable, str(HERE / script)], check=False)
        failed += result.returncode != 0
        print(flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
