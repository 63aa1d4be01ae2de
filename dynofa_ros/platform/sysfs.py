"""Small helpers to read and write kernel attribute files under a (possibly fake) root.

Every backend takes a ``sysfs_root``; absolute system paths such as ``/sys/class/thermal`` are
joined under it, so tests can point the backends at a fake tree in a temporary directory.
"""

from __future__ import annotations

import errno
from pathlib import Path


class SysfsFormatError(ValueError):
    """An attribute file holds text that is not what its interface documents."""


def root_path(sysfs_root: str | Path) -> Path:
    """The resolved root directory; a clear error when it does not exist."""
    root = Path(sysfs_root)
    if not root.is_dir():
        raise FileNotFoundError(f"sysfs root {str(root)!r} is not a directory")
    return root.resolve()


def under(root: Path, system_path: str) -> Path:
    """``system_path`` (absolute, e.g. "/sys/class/devfreq") placed under ``root``."""
    return root / system_path.lstrip("/")


def relative(root: Path, path: Path) -> str:
    """``path`` as the absolute system path it stands for (the inverse of :func:`under`)."""
    return "/" + path.relative_to(root).as_posix()


def read_text(path: Path) -> str:
    """The stripped content of one attribute file."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "attribute file not found", str(path)) from None


def read_optional(path: Path) -> str | None:
    """Content of ``path``, or None when it is missing or unreadable (optional attributes)."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_int(path: Path) -> int:
    """An integer attribute (e.g. a frequency in kHz)."""
    text = read_text(path)
    try:
        return int(text)
    except ValueError:
        raise SysfsFormatError(f"{path}: expected an integer, got {text!r}") from None


def read_optional_int(path: Path) -> int | None:
    """An integer attribute, or None when missing, unreadable or not numeric."""
    text = read_optional(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_ints(path: Path) -> tuple[int, ...]:
    """A whitespace-separated list of integers (e.g. ``scaling_available_frequencies``)."""
    text = read_text(path)
    try:
        return tuple(int(tok) for tok in text.split())
    except ValueError:
        raise SysfsFormatError(f"{path}: expected integers separated by spaces, got {text!r}") from None


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """CPU ids from a kernel CPU list: "0 1", "0-3", "0-1,4"."""
    cpus: list[int] = []
    for part in text.replace(",", " ").split():
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                cpus.extend(range(int(lo), int(hi) + 1))
            else:
                cpus.append(int(part))
        except ValueError:
            raise SysfsFormatError(f"bad CPU list {text!r}") from None
    return tuple(sorted(set(cpus)))


def write_value(path: Path, value: str | int) -> None:
    """Write one value to an attribute file that already exists (never creates files).

    Raises PermissionError (not root, or a read-only attribute), FileNotFoundError, or the
    kernel's OSError (e.g. EINVAL for a value the driver rejects), each naming the path.
    """
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "attribute file not found", str(path))
    try:
        with open(path, "w") as f:  # sysfs ignores O_TRUNC; fake trees need it
            f.write(f"{value}\n")
    except PermissionError:
        raise PermissionError(errno.EACCES, "permission denied writing attribute", str(path)) from None
    except OSError as exc:
        raise OSError(exc.errno, f"writing {value!r} failed: {exc.strerror}", str(path)) from None


def write_limits(min_path: Path, max_path: Path, new_min: int, new_max: int) -> None:
    """Set a [min, max] pair of limit files without ever asking for min > max in between.

    Raising the range writes max first, lowering it writes min first; drivers (devfreq on Jetson,
    older cpufreq) reject an intermediate state where min exceeds max.
    """
    if new_min > new_max:
        raise ValueError(f"min {new_min} exceeds max {new_max} for {min_path.parent}")
    if new_min > read_int(max_path):
        write_value(max_path, new_max)
        write_value(min_path, new_min)
    else:
        write_value(min_path, new_min)
        write_value(max_path, new_max)
