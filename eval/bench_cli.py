"""``enclave bench cli``: how long the everyday commands take to start and answer.

Each command runs as a user runs it: a fresh ``enclave`` process, timed from start to exit
(wall and CPU), ``runs`` times, the median kept. The operating system's file cache is warm
after the first run, as it is for anyone who uses the CLI more than once; nothing else is
shared between runs. One more run under ``python -X importtime`` says where the start-up
goes: the imports summed by top-level package (each module's own time, so no package is
counted twice), and whether a heavy library the command does not need was loaded.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_ENCLAVE = Path(sys.executable).parent / "enclave"
# What a command that neither embeds with PyTorch nor parses should never load.
HEAVY = ("torch", "transformers", "sentence_transformers", "llama_index", "unstructured")


def commands(query: str) -> list[list[str]]:
    """`--help` first: the floor every command stands on (Python, typer, rich)."""
    return [["--help"], ["status"], ["search", query], ["users", "list"], ["jobs", "list"],
            ["audit", "list"]]


def bench_cli(data_dir: Path, runs: int = 5, query: str = "x", top: int = 8) -> dict[str, Any]:
    env = {**os.environ, "ENCLAVE_DATA_DIR": str(data_dir)}
    rows = [_one(args, env, runs, top) for args in commands(query)]
    return {"data_dir": str(data_dir), "runs": runs,
            "embedding": os.environ.get("ENCLAVE_EMBEDDING__MODE", "(configured default)"),
            "load_average": [round(x, 2) for x in os.getloadavg()], "commands": rows}


def _one(args: Sequence[str], env: dict[str, str], runs: int, top: int) -> dict[str, Any]:
    walls, cpus = [], []
    failed: str | None = None
    for _ in range(runs):
        wall, cpu, done = _timed([str(_ENCLAVE), *args], env)
        walls.append(wall)
        cpus.append(cpu)
        if done.returncode != 0:
            failed = f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
            break
    # `-X importtime` writes one line per module to stderr as it is imported.
    _, _, traced = _timed([sys.executable, "-X", "importtime", str(_ENCLAVE), *args], env)
    imports = parse_importtime(traced.stderr)
    modules = {name for name, _ in imports}
    by_package: dict[str, float] = defaultdict(float)
    for name, self_s in imports:
        by_package[name.split(".")[0]] += self_s
    ranked = sorted(by_package.items(), key=lambda kv: -kv[1])[:top]
    return {
        "command": " ".join(args),
        "median_s": round(statistics.median(walls), 3),
        "runs_s": [round(w, 3) for w in walls],
        "cpu_median_s": round(statistics.median(cpus), 3),
        "import_s": round(sum(s for _, s in imports), 3),
        "modules": len(modules),
        "top_imports": [{"package": p, "self_s": round(s, 3)} for p, s in ranked],
        "heavy_loaded": [h for h in HEAVY if h in modules],
        "error": failed,
    }


def _timed(cmd: Sequence[str], env: dict[str, str]
           ) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done


def parse_importtime(stderr: str) -> list[tuple[str, float]]:
    """(module, its own import seconds) for each line ``-X importtime`` wrote."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        try:
            self_us, _cumulative, name = line.split(":", 1)[1].split("|")
            found.append((name.strip(), int(self_us) / 1e6))
        except ValueError:
            continue  # a command's own stderr line that happens to start the same way
    return found
