#!/usr/bin/env python3
"""Checks that each native crate built alone resolves its dependencies with the workspace's features, and that
the component's three wasi:http builds resolve theirs alike.

Cargo resolves features per set of packages built; a crate compiled with a feature set the whole workspace does
not use is compiled again (with everything above it) when the next command builds a different set, which is how
`cargo build -p classify-native` after an edge-host or workspace build used to take another 15 minutes, and the
tests' wasi:http 0.2 build of the component compiled tract and tokenizers for wasm a second time. The
`classify-workspace-hack` crate asks for the workspace's features; this script fails when it is stale (after a
dependency change) and prints the crates and features to add to workspace-hack/Cargo.toml.

Usage: .ci/check_features.py   (runs `cargo tree`; compiles nothing)
"""

import collections
import subprocess
import sys

HOST = "x86_64-unknown-linux-gnu"
WASM = "wasm32-wasip2"
EDGE = ["-p", "classify-edge"]
# (target, the selection everything is compared with, selections whose units it must hold where they share a crate)
# The host reference is what `cargo test --workspace` builds: dev-dependencies add features too.
CHECKS = [
    (HOST, ["--workspace", "-e", "normal,build,dev"],
     [["--workspace"]] + [["-p", p] for p in ("classify-native", "classify-edge-host", "classify-tests")]),
    (WASM, EDGE, [EDGE + ["--no-default-features", "--features", f] for f in ("wasi-http-p3", "wasi-http-p2")]),
]


def units(target: str, selection: list) -> dict:
    """Each dependency of `selection` (name and version) with the feature sets it is built with."""
    edges = [] if "-e" in selection else ["-e", "normal,build"]
    out = subprocess.run(
        ["cargo", "tree", "--locked", *selection, *edges, "--prefix", "none",
         "-f", "{p} [{f}]", "--target", target],
        capture_output=True, text=True, check=True,
    ).stdout
    found = collections.defaultdict(set)
    for line in out.splitlines():
        package, _, rest = line.partition(" [")
        if rest and not package.startswith("classify-"):
            found[package.split(" (")[0]].add(rest.split("]")[0])
    return found


def main() -> int:
    problems = 0
    for target, reference, selections in CHECKS:
        known = units(target, reference)
        for selection in selections:
            for dependency, features in sorted(units(target, selection).items()):
                if dependency not in known:
                    continue  # only this build uses it (a wasi:http build's SDK)
                for extra in sorted(features - known.get(dependency, set())):
                    problems += 1
                    print(f"{target} {' '.join(selection)}: {dependency} is built with [{extra}], "
                          f"{' '.join(reference[:1])} with {sorted(known.get(dependency, set()))}")
    if problems:
        print(f"{problems} feature set(s) differ: add the missing features to workspace-hack/Cargo.toml")
        return 1
    print("features: every checked build reuses the units of the whole build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
