"""Byte identity of dlc's ONNX output: record it once, check it after every speed change.

For every spec under `specs/`, compiles to ONNX at -O0 and -O2 (each a fresh `dlc compile`
process) and takes the sha256 of every file written (the model and any external data).
`--record FILE` stores them; `--check FILE` compiles again, twice (each compile with an
empty cache directory, then all with one warmed cache directory; `--mode` picks one), and
fails unless every digest equals the recorded one. A
spec whose YAML changed since the record (another issue edited it) is reported as such
and not compared: record a new baseline from the commit just before the change.

    python benchmarks/output_identity.py --record /tmp/baseline.json
    python benchmarks/output_identity.py --check /tmp/baseline.json [--specs mlp,resnet50]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LEVELS = (0, 2)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def all_specs(subset: str | None) -> list[Path]:
    specs = sorted((REPO / "specs").rglob("*.yaml"))
    if subset:
        wanted = {name.strip() for name in subset.split(",") if name.strip()}
        specs = [s for s in specs if s.stem in wanted or str(s.relative_to(REPO)) in wanted]
    return specs


def compile_digests(spec: Path, level: int, cache_dir: Path | None) -> dict[str, str]:
    """sha256 of each file `dlc compile SPEC -O LEVEL` writes, by file name."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["DLC_CACHE_DIR"] = str(cache_dir)
    with tempfile.TemporaryDirectory(prefix="dlc-identity-") as work:
        output = Path(work) / f"{spec.stem}.onnx"
        command = [sys.executable, "-m", "dlc.cli", "compile", str(spec), f"-O{level}", "-o", str(output)]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
        if result.returncode != 0:
            return {"error": f"exit {result.returncode}: {result.stderr.strip()[-500:]}"}
        return {p.name: sha256(p) for p in sorted(Path(work).iterdir()) if p.is_file()}


def run_all(specs: list[Path], cache_dir: Path | None, cold: bool = False) -> dict[str, dict]:
    """Digests of every spec at every level; with `cold`, each compile gets an empty cache
    directory of its own, else they share `cache_dir`."""
    results = {}
    for spec in specs:
        key = str(spec.relative_to(REPO))
        entry: dict = {"spec_sha256": sha256(spec)}
        for level in LEVELS:
            if cold:
                with tempfile.TemporaryDirectory(prefix="dlc-identity-cold-") as empty:
                    entry[f"O{level}"] = compile_digests(spec, level, Path(empty))
            else:
                entry[f"O{level}"] = compile_digests(spec, level, cache_dir)
        results[key] = entry
        print(f"{key}: done", file=sys.stderr, flush=True)
    return results


def compare(baseline: dict, current: dict, label: str) -> list[str]:
    problems = []
    for key, entry in current.items():
        if key not in baseline:
            print(f"[{label}] {key}: new spec, no baseline")
            continue
        if baseline[key]["spec_sha256"] != entry["spec_sha256"]:
            print(f"[{label}] {key}: spec changed since the baseline, not compared")
            continue
        for level in LEVELS:
            expected, got = baseline[key][f"O{level}"], entry[f"O{level}"]
            verdict = "identical" if expected == got else "DIFFERENT"
            print(f"[{label}] {key} -O{level}: {verdict}")
            if expected != got:
                problems.append(f"{key} -O{level} ({label}): expected {expected}, got {got}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", help="write the digests of the current code to this JSON file")
    mode.add_argument("--check", help="compare against the digests in this JSON file (cold and warm cache)")
    parser.add_argument("--specs", help="comma-separated spec stems or paths (default: every spec)")
    parser.add_argument(
        "--mode",
        choices=("both", "cold", "warm"),
        default="both",
        help="cold: every compile with an empty cache; warm: a cache filled by a first compile",
    )
    args = parser.parse_args()
    specs = all_specs(args.specs)
    if args.record:
        Path(args.record).write_text(json.dumps(run_all(specs, None), indent=2) + "\n")
        print(f"recorded {len(specs)} specs to {args.record}")
        return 0
    baseline = json.loads(Path(args.check).read_text())
    problems = []
    with tempfile.TemporaryDirectory(prefix="dlc-identity-cache-") as cache:
        if args.mode in ("both", "cold"):
            problems += compare(baseline, run_all(specs, None, cold=True), "cold cache")
        if args.mode in ("both", "warm"):
            compile_digests(REPO / "specs" / "mlp.yaml", 0, Path(cache))  # fills the cache
            problems += compare(baseline, run_all(specs, Path(cache)), "warm cache")
    for problem in problems:
        print(problem)
    print("all identical" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
