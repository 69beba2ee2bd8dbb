"""Path helpers shared by every command-line program of the project.

Under ``bazel run`` the program runs inside Bazel's runfiles tree, not in the directory the
user typed the command in; Bazel exports that directory as ``BUILD_WORKING_DIRECTORY``. Users
expect ``--config=foo.json`` to mean *their* ``foo.json``, so relative paths given in flags
are resolved against it when it is set (and against the current directory otherwise).

This module is deliberately dependency-free: ``engine`` is the bottom package and every
other package may import it.
"""

from __future__ import annotations

import os
from pathlib import Path

BAZEL_WORKING_DIR_ENV = "BUILD_WORKING_DIRECTORY"


def user_working_dir() -> Path:
    """The directory the user ran the command from (Bazel's, if run by ``bazel run``)."""
    bazel_dir = os.environ.get(BAZEL_WORKING_DIR_ENV)
    return Path(bazel_dir) if bazel_dir else Path.cwd()


def resolve_user_path(p: str | os.PathLike[str]) -> Path:
    """Resolve a path given by the user on the command line.

    ``~`` is expanded; absolute paths are returned unchanged; relative paths are taken
    relative to :func:`user_working_dir`.
    """
    path = Path(os.path.expanduser(os.fspath(p)))
    if path.is_absolute():
        return path
    return user_working_dir() / path
