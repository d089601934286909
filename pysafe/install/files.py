"""Place pysafe's files on the database host: server-side Python, extension files, shim."""

from __future__ import annotations

import compileall
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pysafe import __version__
from pysafe.install.assets import PACKAGE_DIR, asset_dir
from pysafe.install.errors import InstallError

SHIM_NAME = "pysafe"
# Session-start enforcement before PostgreSQL 17 (installer/pysafe_session.c).
SESSION_LIBRARY = f"{SHIM_NAME}_session"
PATH_PLACEHOLDER = "@PYSAFE_PYTHON_PATH@"


@dataclass(frozen=True)
class ServerPaths:
    """Where the server looks for things, from its pg_config."""

    pg_config: Path
    major: int
    sharedir: Path
    pkglibdir: Path
    pgxs: Path

    @property
    def python_dir(self) -> Path:
        """The folder PL/Python imports pysafe and pglast from."""
        return self.sharedir / "pysafe" / "python"

    @property
    def extension_dir(self) -> Path:
        return self.sharedir / "extension"

    @property
    def shim_library(self) -> Path:
        return self.pkglibdir / f"{SHIM_NAME}.so"

    @property
    def session_library(self) -> Path:
        return self.pkglibdir / f"{SESSION_LIBRARY}.so"

    def extension_files(self) -> list[Path]:
        return sorted(self.extension_dir.glob("pysafe.control")) + sorted(
            self.extension_dir.glob("pysafe--*.sql")
        )


def pg_config_value(pg_config: Path, flag: str) -> str:
    result = subprocess.run([str(pg_config), flag], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InstallError(f"{pg_config} {flag} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def pg_config_major(pg_config: Path) -> int:
    """Major version from "PostgreSQL 15.18 (Debian ...)"."""
    version = pg_config_value(pg_config, "--version").split()[1]
    return int(version.split(".")[0])


def find_pg_config(server_major: int, explicit: Path | None) -> ServerPaths:
    """The pg_config of the server's major version: --pg-config, Debian's path, or PATH."""
    candidates = (
        [explicit]
        if explicit
        else [
            Path(f"/usr/lib/postgresql/{server_major}/bin/pg_config"),
            *([Path(p)] if (p := shutil.which("pg_config")) else []),
        ]
    )
    seen = []
    for candidate in candidates:
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            continue
        major = pg_config_major(candidate)
        seen.append(f"{candidate} ({major})")
        if major == server_major:
            return ServerPaths(
                pg_config=candidate,
                major=major,
                sharedir=Path(pg_config_value(candidate, "--sharedir")),
                pkglibdir=Path(pg_config_value(candidate, "--pkglibdir")),
                pgxs=Path(pg_config_value(candidate, "--pgxs")),
            )
    found = ", ".join(seen) or "none"
    raise InstallError(
        f"no pg_config for PostgreSQL {server_major} (found: {found}); install "
        f"postgresql-server-dev-{server_major} or pass --pg-config PATH."
    )


def require_build_tools(paths: ServerPaths) -> None:
    """The shim is built with PGXS: it needs the server headers, make and a C compiler."""
    if not paths.pgxs.is_file():
        raise InstallError(
            f"PGXS ({paths.pgxs}) is missing: install postgresql-server-dev-{paths.major}."
        )
    for tool in ("make", "gcc"):
        if shutil.which(tool) is None:
            raise InstallError(f"{tool} is not installed: install build-essential.")


def require_writable(paths: ServerPaths) -> None:
    for folder in (paths.sharedir, paths.pkglibdir):
        if not os.access(folder, os.W_OK):
            raise InstallError(
                f"cannot write to {folder}: run install as root (or the owner of the "
                "PostgreSQL installation) on the database host; as root it still connects "
                "as postgres, by peer authentication over the local socket."
            )


def replace_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Build a folder beside ``target`` and swap it in, so readers never see half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fill(staging)
        for path in [staging, *staging.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        old = target.with_name(f".{target.name}-old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_file(target: Path, text: str) -> None:
    """Write beside ``target`` and rename over it, so readers never see half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}-new")
    staging.write_text(text)
    staging.chmod(0o644)
    staging.rename(target)


def copy_package(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "_assets"))


# The pglast release whose libpg_query embeds each server's grammar, by
# server major version (pglast.parser.get_postgresql_version() says which;
# each has cp311 and cp313 wheels on PyPI).  The policy should read a
# statement as the server it runs in reads it ("EXECUTE system_user"
# parses on 15 and not on 16+).  No pglast for PostgreSQL 14 has wheels for
# today's Pythons: 14 would get 15's grammar, the nearest.
PGLAST_FOR_SERVER: dict[int, str] = {14: "5.10", 15: "5.10", 16: "6.17", 17: "7.22", 18: "8.8"}
# The grammars install places: each tested server gets its own.  Before
# PostgreSQL 18's, libpg_query does not check the depth of the trees it
# hands pglast, and pglast 5 or 7 takes seconds to build a deep 256 kB one;
# the shim refuses a statement whose server tree is deeper than the policy's
# bound before Python sees it (installer/depth.c), and the policy gates what
# the shim did not measure without protobuf (pysafe/policy/parsing.py,
# DEPTH_CHECKED_OUTPUT).  14 and 16 (untested) keep PostgreSQL 18's grammar.
PLACED_GRAMMARS = frozenset({15, 17, 18})
DEFAULT_PGLAST = PGLAST_FOR_SERVER[18]


def pglast_release(server_major: int) -> str:
    """The pglast version install places for a server major version."""
    if server_major in PLACED_GRAMMARS:
        return PGLAST_FOR_SERVER[server_major]
    return DEFAULT_PGLAST


def pglast_grammar(release: str) -> int:
    """The PostgreSQL major whose grammar a pglast release embeds (5 is 15's, ...)."""
    return int(release.split(".", maxsplit=1)[0]) + 10


def local_pglast_grammar() -> int | None:
    """The grammar (server major) of the pglast this Python imports, if any."""
    try:
        from pglast.parser import get_postgresql_version  # noqa: PLC0415
    except ImportError:
        return None
    return int(get_postgresql_version()[0])


def copy_pglast(destination: Path, server_python: tuple[int, int], server_major: int) -> None:
    """pglast with the server's grammar for the server's interpreter: ours if
    both match, else the release of PGLAST_FOR_SERVER from PyPI."""
    release = pglast_release(server_major)
    wanted_grammar = pglast_grammar(release)
    spec = importlib.util.find_spec("pglast")
    if (
        spec is not None
        and spec.origin
        and sys.version_info[:2] == server_python
        and local_pglast_grammar() == wanted_grammar
    ):
        copy_package(Path(spec.origin).parent, destination / "pglast")
        return
    version = f"{server_python[0]}.{server_python[1]}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            version,
            "--target",
            str(destination),
            f"pglast=={release}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InstallError(
            f"could not fetch pglast {release} (PostgreSQL {server_major}'s grammar) for the "
            f"server's Python {version}: {result.stderr.strip()[-400:]}; give this host access "
            f"to PyPI, or install pysafe from a Python {version} environment with "
            f"pglast=={release} installed."
        )


def place_python_code(paths: ServerPaths, server_python: tuple[int, int]) -> None:
    """Copy pysafe and pglast (with the server's grammar) where PL/Python
    imports them, byte-compiled when we can."""

    def fill(staging: Path) -> None:
        copy_package(PACKAGE_DIR, staging / "pysafe")
        copy_pglast(staging, server_python, paths.major)
        if sys.version_info[:2] == server_python:
            compileall.compile_dir(staging, quiet=1)

    replace_dir(paths.python_dir, fill)


# Where an update script takes this version's whole script (sql/*--*--*.sql.in).
VERSION_SCRIPT_PLACEHOLDER = "-- @PYSAFE_VERSION_SCRIPT@"


def render_extension_script(paths: ServerPaths, template: Path | None = None) -> str:
    """A script of sql/ with the server's paths: this version's, or ``template``."""
    version_script = asset_dir("sql") / f"pysafe--{__version__}.sql.in"
    text = (template or version_script).read_text()
    if VERSION_SCRIPT_PLACEHOLDER in text:
        text = text.replace(VERSION_SCRIPT_PLACEHOLDER, version_script.read_text())
    return text.replace(PATH_PLACEHOLDER, str(paths.python_dir))


def place_extension_files(paths: ServerPaths) -> None:
    """The control file, this version's script and every update script to it."""
    paths.extension_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(asset_dir("sql") / "pysafe.control", paths.extension_dir / "pysafe.control")
    for template in sorted(asset_dir("sql").glob("pysafe--*.sql.in")):
        script = paths.extension_dir / template.name.removesuffix(".in")
        script.write_text(render_extension_script(paths, template))
    for path in paths.extension_files():
        path.chmod(0o644)


@functools.cache  # install asks three times; the sources do not change meanwhile
def shim_build() -> str:
    """A digest of the shim's sources: the build install places (pysafe.shim_build)."""
    digest = hashlib.sha256()
    for source in sorted(asset_dir("installer").iterdir()):
        if source.is_file():
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return f"{__version__}-{digest.hexdigest()[:12]}"


def restart_needed(shim: bool, loaded_build: str | None) -> bool:
    """Must the server restart to run the shim install placed (a build differs)?"""
    return shim and loaded_build != shim_build()


def build_shim(paths: ServerPaths) -> None:
    """make install with PGXS, in a scratch copy so the package folder stays clean."""
    with tempfile.TemporaryDirectory(prefix="pysafe-shim-") as scratch:
        build_dir = Path(scratch) / "installer"
        shutil.copytree(asset_dir("installer"), build_dir)
        result = subprocess.run(
            [
                "make",
                "-C",
                str(build_dir),
                f"PG_CONFIG={paths.pg_config}",
                f"PYSAFE_SHIM_BUILD={shim_build()}",
                "install",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise InstallError(
            "building the pysafe shim failed; check that postgresql-server-dev-"
            f"{paths.major} and build-essential are installed:\n{result.stderr[-2000:]}"
        )


def remove_files(paths: ServerPaths) -> list[str]:
    """Remove everything install placed; returns what was removed."""
    removed = []
    if paths.python_dir.parent.exists():
        shutil.rmtree(paths.python_dir.parent)
        removed.append(str(paths.python_dir.parent))
    for path in [*paths.extension_files(), paths.shim_library, paths.session_library]:
        if path.exists():
            path.unlink()
            removed.append(str(path))
    return removed
