#!/usr/bin/env python3
"""Checks that each native crate built alone resolves its dependencies with the workspace's features.

Cargo resolves features per set of packages built; a crate compiled with a feature set the whole workspace does
not use is compiled again (with everything above it) when the next command builds a different set, which is how
`cargo build -p classify-native` after an edge-host or workspace build used to take another 15 minutes. The
`classify-workspace-hack` crate asks for the workspace's features; this script fails when it is stale (after a
dependency change) and prints the crates and features to add to workspace-hack/Cargo.toml.

Usage: .ci/check_features.py   (runs `cargo tree`; compiles nothing)
"""

import collections
import subprocess
import sys

PACKAGES = ["classify-native", "classify-edge-host", "classify-tests"]
TARGET = "x86_64-unknown-linux-gnu"


def units(selection: list) -> dict:
    """Each dependency of `selection` (name and version) with the feature sets it is built with."""
    out = subprocess.run(
        ["cargo", "tree", "--locked", *selection, "-e", "normal,build", "--prefix", "none",
         "-f", "{p} [{f}]", "--target", TARGET],
        capture_output=True, text=True, check=True,
    ).stdout
    found = collections.defaultdict(set)
    for line in out.splitlines():
        package, _, rest = line.partition(" [")
        if rest and not package.startswith("classify-"):
            found[package.split(" (")[0]].add(rest.split("]")[0])
    return found


def main() -> int:
    workspace = units(["--workspace"])
    problems = 0
    for package in PACKAGES:
        alone = units(["-p", package])
        for dependency, features in sorted(alone.items()):
            for extra in sorted(features - workspace.get(dependency, set())):
                problems += 1
                print(f"{package}: {dependency} is built with [{extra}], the workspace with "
                      f"{sorted(workspace.get(dependency, set()))}")
    if problems:
        print(f"{problems} feature set(s) differ: add the workspace's features to workspace-hack/Cargo.toml")
        return 1
    print(f"features: {', '.join(PACKAGES)} each build the workspace's units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
