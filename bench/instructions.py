"""Deterministic per-statement cost: callgrind instruction counts of one backend.

Wall-clock ratios on a small shared VM wobble by several percent, more than
the 2% goal being judged.  Callgrind counts the instructions a single-user
backend executes, which repeat exactly.  The same data directory is run with
and without the shim preloaded; the session is made restricted with SET
SESSION AUTHORIZATION (single-user mode logs in as the bootstrap superuser).
Startup cost cancels out by subtracting a run of the same loop with zero
iterations; PYTHONHASHSEED is fixed so the interpreter's start repeats too.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from pysafe.localcluster import LocalCluster, as_service_user

COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def loop_sql(body: str, iterations: int) -> str:
    return f"DO $$BEGIN FOR i IN 1..{iterations} LOOP EXECUTE {body}; END LOOP; END$$\n"


def count_instructions(cluster: LocalCluster, sql: str, preload: bool) -> int:
    """Instructions a single-user backend executes for ``sql`` as a restricted user."""
    options = ["-c", "shared_preload_libraries=" + ("pysafe" if preload else "")]
    if preload:
        options += ["-c", "pysafe.roles=reporting"]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("SET SESSION AUTHORIZATION reporting\n")
        if preload:
            script.write("SELECT pysafe.session_is_restricted()\n")
        script.write(sql)
    os.chmod(script.name, 0o644)
    out_file = Path(tempfile.gettempdir()) / f"callgrind.pysafe.{os.getpid()}"
    command = as_service_user(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
            str(cluster.bindir / "postgres"),
            "--single",
            "-D",
            str(cluster.workdir / "data"),
            *options,
            "postgres",
        ]
    )
    with open(script.name) as stdin:
        result = subprocess.run(
            command,
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            env={**os.environ, "PYTHONHASHSEED": "0"},  # the interpreter's start repeats
        )
    os.unlink(script.name)
    out_file.unlink(missing_ok=True)
    if "ERROR" in result.stdout or result.returncode != 0:
        raise RuntimeError(f"single-user run failed:\n{result.stdout}\n{result.stderr[-2000:]}")
    if preload and 'session_is_restricted = "t"' not in result.stdout:
        raise RuntimeError(f"the measured session was not restricted:\n{result.stdout}")
    match = COLLECTED.search(result.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no total:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def per_iteration_ratio(
    cluster: LocalCluster, body: str, iterations: int
) -> tuple[float, float, float]:
    """(bare, pysafe) instructions per iteration, and their ratio."""
    costs = []
    for preload in (False, True):
        full = count_instructions(cluster, loop_sql(body, iterations), preload)
        empty = count_instructions(cluster, loop_sql(body, 0), preload)
        costs.append((full - empty) / iterations)
    return costs[0], costs[1], costs[1] / costs[0]
