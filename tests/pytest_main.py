"""Entry point of the Bazel py_test wrappers: runs pytest on the file given as argument,
from the repository root as `make test` does (tests import `tests.*` and `conftest`)."""
import os
import sys

import pytest

if __name__ == "__main__":
    target = os.path.realpath(sys.argv[1])  # runfiles symlink -> the source tree
    repo = os.path.dirname(os.path.dirname(target))
    os.chdir(repo)
    sys.path.insert(0, repo)
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", repo, target]))
