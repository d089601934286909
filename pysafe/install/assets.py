"""Find the files install places on the server: sql/ and installer/ (the C shim)."""

from __future__ import annotations

from pathlib import Path

from pysafe.install.errors import InstallError

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def asset_dir(name: str) -> Path:
    """``sql`` or ``installer``: inside the wheel (pysafe/_assets) or the checkout root."""
    for candidate in (PACKAGE_DIR / "_assets" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise InstallError(
        f"pysafe's {name}/ folder is missing from {PACKAGE_DIR}; reinstall pysafe with pip."
    )
