"""``pip install`` of this checkout, without the dev extras, runs ``python -m pysafe demo``.

Issue 12 found the demo failing after a plain install because the runtime
package imported test tooling.  This test makes a fresh virtual environment
(no system site-packages), installs the package as a wheel built from the
checkout, with its runtime dependencies only, and runs the demo on the
PostgreSQL under test.  It needs the package index, as ``.ci/setup`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pysafe.localcluster import DEFAULT_BINDIR
from tests.support import REPO

DEV_ONLY = ("pytest", "ruff", "mypy", "sqlalchemy", "asyncpg", "pandas", "pgcli")


def pip_install_checkout(venv: Path, scratch: Path) -> Path:
    """A venv holding pysafe as a plain user gets it; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # A copy, so building the wheel leaves nothing in the checkout.
    source = scratch / "pysafe-source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".*_cache", "build"),
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    return python


def test_demo_runs_from_a_plain_pip_install(tmp_path: Path) -> None:
    python = pip_install_checkout(tmp_path / "venv", tmp_path)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert {"pysafe", "pglast", "psycopg"} <= names
    assert not names & set(DEV_ONLY), "a runtime dependency pulled in test tooling"

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV"))
    }
    env["PYSAFE_PG_BINDIR"] = str(DEFAULT_BINDIR)
    demo = subprocess.run(
        [str(python), "-m", "pysafe", "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the checkout: the installed package must be the one that runs
        check=False,
        timeout=300,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-3000:]
    assert "REFUSED  INSERT INTO sales VALUES (3, 1)  ->  25006" in output
    assert "REFUSED  CREATE TABLE scratch (x int)  ->  25006" in output
    assert "rows in sales afterwards: 2 (nothing was written)" in output
    assert "No module named" not in output
