"""Entry point of the Bazel py_test wrappers: runs pytest on the file given as argument."""
import os
import sys

import pytest

if __name__ == "__main__":
    target = os.path.realpath(sys.argv[1])  # runfiles symlink -> the source tree
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", target]))
