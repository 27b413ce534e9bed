#!/usr/bin/env python3
"""The patched tract crates under third_party/, as the crates.io release plus one patch file each.

    third_party/sync.py check    rebuild every copy from crates.io + patches/<crate>.patch + PATCHED.md and
                                 fail if it differs from the committed copy (CI runs this)
    third_party/sync.py write    rewrite the copies from crates.io + the patches (after editing a patch)
    third_party/sync.py diff     rewrite the patches from the committed copies (after editing a copy)

The .crate files are downloaded from static.crates.io into target/tract-upstream/ and checked against the
sha256 sums below; files crates.io ships that the build never reads (Cargo.lock, benchmark notes, core dumps)
are left out of the copies.
"""

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIRD_PARTY = ROOT / "third_party"
PATCHES = THIRD_PARTY / "patches"
CACHE = ROOT / "target" / "tract-upstream"
VERSION = "0.23.9"

CRATES = {
    "tract-core": "bb76580817f14ceb9f054d3732c1d09575940e88fa5bbfc85c3eae34482bb089",
    "tract-hir": "cc9b23e03b965c23ff4362b8cd062f21ccce2eeed40cb28a7f3715e8facf2984",
    "tract-onnx": "43727ce75fcd18908927e6e1b47d043fe5606d8b85c8ea6aa36481406d37b24a",
    "tract-linalg": "ca57ed3a2f6293e7866c6ceed7c6ca3413b4e083a892a00a79f5e9b607154982",
}

# Shipped in the .crate, not needed to build.
LEFT_OUT = {
    ".cargo_vcs_info.json",
    "Cargo.lock",
    "Cargo.toml.orig",
    "AMX_BENCH_RESULTS.md",
    "AMX_BENCH_RUNBOOK.md",
    "MULTITHREAD_BENCHMARKS.md",
    "SME_PHASE1_BENCH.xlsx",
    "X86_64_INT8_GEMM.md",
    "core.331",
    "core.347",
}

# Ours, beside the upstream files: what the patch does and why.
OURS = {"PATCHED.md"}


def crate_file(name: str) -> Path:
    path = CACHE / f"{name}-{VERSION}.crate"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        url = f"https://static.crates.io/crates/{name}/{name}-{VERSION}.crate"
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
        path.write_bytes(data)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != CRATES[name]:
        path.unlink()
        sys.exit(f"{name}-{VERSION}.crate: sha256 {digest}, expected {CRATES[name]}")
    return path


def upstream(name: str, into: Path) -> Path:
    """The release's files, without those left out."""
    with tarfile.open(crate_file(name)) as archive:
        archive.extractall(into, filter="data")
    tree = into / f"{name}-{VERSION}"
    for left_out in LEFT_OUT:
        target = tree / left_out
        if target.exists():
            target.unlink()
    return tree


def files(tree: Path) -> dict:
    return {
        p.relative_to(tree).as_posix(): p.read_bytes()
        for p in sorted(tree.rglob("*"))
        if p.is_file()
    }


def patched(name: str, into: Path) -> Path:
    """The release with its patch applied and our notes added: what the copy must be."""
    tree = upstream(name, into)
    patch = PATCHES / f"{name}.patch"
    if patch.exists() and patch.stat().st_size:
        subprocess.run(
            ["git", "apply", "--whitespace=nowarn", "-p1", str(patch)],
            cwd=tree,
            check=True,
        )
    for ours in OURS:
        shutil.copy(THIRD_PARTY / name / ours, tree / ours)
    return tree


def check() -> int:
    problems = []
    for name in CRATES:
        with tempfile.TemporaryDirectory() as temp:
            want = files(patched(name, Path(temp)))
            have = files(THIRD_PARTY / name)
            for path in sorted(set(want) | set(have)):
                if path not in have:
                    problems.append(f"third_party/{name}/{path}: missing")
                elif path not in want:
                    problems.append(f"third_party/{name}/{path}: not in the release or its patch")
                elif want[path] != have[path]:
                    problems.append(f"third_party/{name}/{path}: differs from the release + patch")
    for problem in problems:
        print(problem)
    if problems:
        print("third_party/sync.py diff rewrites the patches from the copies; write rewrites the copies")
        return 1
    print(f"third_party: {', '.join(CRATES)} equal crates.io {VERSION} + patches/")
    return 0


def write() -> int:
    for name in CRATES:
        with tempfile.TemporaryDirectory() as temp:
            tree = patched(name, Path(temp))
            target = THIRD_PARTY / name
            shutil.rmtree(target)
            shutil.copytree(tree, target)
    return check()


def diff() -> int:
    PATCHES.mkdir(exist_ok=True)
    for name in CRATES:
        with tempfile.TemporaryDirectory() as temp:
            temp = Path(temp)
            tree = upstream(name, temp)
            (temp / "a").symlink_to(tree)
            copy = temp / "b"
            shutil.copytree(THIRD_PARTY / name, copy, ignore=shutil.ignore_patterns(*OURS))
            result = subprocess.run(
                ["diff", "-ruN", "a/", "b/"], cwd=temp, capture_output=True, text=True
            )
            if result.returncode > 1:
                sys.exit(result.stderr)
            # Without the file times diff puts on its headers, so the same change gives the same patch.
            lines = [
                line.split("\t")[0] if line.startswith(("--- ", "+++ ")) else line
                for line in result.stdout.splitlines()
            ]
            (PATCHES / f"{name}.patch").write_text("\n".join(lines) + "\n")
    return check()


def main() -> int:
    commands = {"check": check, "write": write, "diff": diff}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    return commands[sys.argv[1]]()


if __name__ == "__main__":
    sys.exit(main())
