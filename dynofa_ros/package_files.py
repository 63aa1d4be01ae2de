"""The one lookup for the package's own files: board configs, the shipped library, demo data, launch, rviz, msg.

They live in the package's share directory: ``$DYNOFA_SHARE_DIR`` when set, else the source checkout (the
folder holding ``package.xml`` beside ``dynofa_ros/``), else ``share/dynofa_ros`` of the installed package as
the ament index finds it (``source install/setup.bash``). Nothing outside the package is ever a default.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARE_ENV = "DYNOFA_SHARE_DIR"
PACKAGE = "dynofa_ros"


def share_dir() -> Path:
    """The folder that holds ``config/``, ``models/``, ``data/``, ``launch/`` and ``msg/``.

    FileNotFoundError saying where it looked when there is none.
    """
    env = env_path(SHARE_ENV, folder=True)
    if env is not None:
        return env
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "package.xml").is_file():
        return checkout
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        pass
    else:
        try:
            return Path(get_package_share_directory(PACKAGE))
        except PackageNotFoundError:
            pass
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} share directory: not a source checkout, not in the ament index "
        f"(source the install's setup.bash) and ${SHARE_ENV} is not set")


def env_path(variable: str, folder: bool = False) -> Path | None:
    """The path that ``$variable`` names (None when unset or empty); FileNotFoundError when it names no file
    (``folder``: no folder)."""
    value = os.environ.get(variable)
    if not value:
        return None
    path = Path(value).expanduser()
    if not (path.is_dir() if folder else path.is_file()):
        raise FileNotFoundError(f"${variable} points at {path}, which is not a {'folder' if folder else 'file'}")
    return path


def package_file(*parts: str) -> Path:
    """``share_dir()/parts``; FileNotFoundError naming the full path when it does not exist."""
    path = share_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{PACKAGE} file not found: {path}")
    return path
