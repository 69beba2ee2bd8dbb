#!/bin/sh
echo "coverage is not available in this offline Bazel set-up" >&2
exit 1
