"""compose.yaml and .env.example: valid Compose, and the deployment's promises kept.

Offline and without Docker: the file is validated against the Compose Specification's JSON
schema (vendored by check-jsonschema), then its invariants are read with PyYAML: only the
API is reachable from outside, data services sit on an internal network, everything has a
health check, images are pinned, secrets come from .env, and every ENCLAVE_* variable names
a real setting and parses into production settings.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"

# Services that run once and exit (restart "no"); everything else runs for good.
ONE_SHOT = {"migrate"}
ENCLAVE_SERVICES = ("migrate", "api", "worker")
# Variables compose.yaml reads for itself that happen to start with ENCLAVE_ but are not
# settings of the application (they must never become one).
COMPOSE_ONLY = {"ENCLAVE_VERSION", "ENCLAVE_PORT"}
# The settings that carry those secrets: production refuses each while it is a placeholder.
PLACEHOLDER_SETTINGS = ("ENCLAVE_DATABASE_URL", "ENCLAVE_QDRANT__API_KEY", "ENCLAVE_LLM__API_KEY",
                        "ENCLAVE_JOBS__BROKER_URL", "ENCLAVE_SERVE__METRICS_TOKEN")
SECRET_VARS = {"POSTGRES_PASSWORD", "QDRANT_API_KEY", "REDIS_PASSWORD", "VLLM_API_KEY", "METRICS_TOKEN"}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}, ${VAR+alt}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# -- helpers ------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f".env.example:{number}: {raw!r}"
        assert key not in values, f".env.example defines {key} twice"
        values[key] = value.strip().strip("'\"")
    return values


def interpolations(text: str) -> list[tuple[str, str | None, str]]:
    """Every ${...} in text: (name, operator or None, argument)."""
    return [(m["name"], m["op"], m["arg"] or "") for m in _INTERPOLATION.finditer(text)]


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string, as `docker compose config` would do it."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"] or ""
        current = env.get(name)
        unset_or_empty = not current
        match op:
            case None:
                return current or ""
            case ":-":
                return arg if unset_or_empty else str(current)
            case "-":
                return arg if current is None else current
            case ":?" | "?":
                missing = unset_or_empty if op == ":?" else current is None
                if missing:
                    raise KeyError(f"{name}: {arg}")
                return str(current)
            case ":+":
                return "" if unset_or_empty else arg
            case "+":
                return "" if current is None else arg
        raise AssertionError(op)

    return _INTERPOLATION.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def strings(node: Any) -> list[str]:
    """Every string (keys included) anywhere in a loaded YAML document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """A service's environment after interpolation with env (the .env file)."""
    raw = services()[name].get("environment") or {}
    assert isinstance(raw, dict), f"{name}: write environment as a mapping"
    return {key: interpolate(str(value), env) for key, value in raw.items()}


def container_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """What the container's process sees: the env_file's variables, then environment over them."""
    service = services()[name]
    base = dict(env) if service.get("env_file") == ".env" else {}
    return base | service_env(name, env)


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), "depends_on must be a mapping with a condition for each service"
    return deps


# -- the Compose Specification -------------------------------------------------------------------


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against the Compose Specification it vendors: no network needed."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         *map(str, paths)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_compose_file_follows_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


# Each breakage, and the error check-jsonschema must report for it.
BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "ports-not-a-list": (lambda doc: doc["services"]["api"].__setitem__("ports", 8000),
                         "$.services.api.ports: 8000 is not of type 'array'"),
    "unknown-top-level-key": (lambda doc: doc.__setitem__("servces", {}),
                              "$: 'servces' does not match any of the regexes"),
    "restart-not-a-string": (lambda doc: doc["services"]["worker"].__setitem__("restart", ["always"]),
                             "$.services.worker.restart: ['always'] is not of type 'string'"),
}


def test_the_schema_check_fails_on_broken_copies(tmp_path: Path) -> None:
    # One run over every broken copy and an unbroken control (the same YAML round trip), so
    # that each failure is the breakage's and not the copying's.
    files = {}
    for case, (breakage, _) in [*BREAKAGES.items(), ("control", (lambda doc: None, ""))]:
        doc = compose()
        breakage(doc)
        files[case] = tmp_path / case / "compose.yaml"
        files[case].parent.mkdir()
        files[case].write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = check_jsonschema(*files.values())
    output = result.stdout + result.stderr
    assert result.returncode != 0, "the schema check accepted broken compose files"
    for case, (_, error) in BREAKAGES.items():
        assert f"{files[case]}::{error}" in output, f"{case} was not reported: {output}"
    assert str(files["control"]) not in output, output


def test_no_obsolete_version_key_and_a_fixed_project_name() -> None:
    doc = compose()
    assert "version" not in doc, "the Compose Specification has no top-level version"
    assert doc.get("name") == "enclave"


# -- networks and ports ------------------------------------------------------------------------


def test_only_the_api_is_reachable_from_outside() -> None:
    doc = compose()
    networks = {name: spec or {} for name, spec in doc["networks"].items()}
    assert networks["backend"].get("internal") is True, "the backend network must be internal"
    assert networks["edge"].get("internal") is not True
    for name, service in doc["services"].items():
        joined = service.get("networks")
        assert isinstance(joined, list) and joined, f"{name}: name its networks explicitly"
        assert "backend" in joined, f"{name} is not on the backend network"
        for network in joined:
            if name == "api" and network == "edge":
                continue
            assert networks[network].get("internal") is True, (
                f"{name} joins {network}, which is not internal: it would have a route out")
        if name != "api":
            assert "ports" not in service, f"{name} publishes a port; only api may"
            assert service.get("network_mode") is None, f"{name} leaves the compose networks"
    # The masquerade switch keeps even the API's own network from opening connections out.
    edge_opts = networks["edge"].get("driver_opts") or {}
    assert edge_opts.get("com.docker.network.bridge.enable_ip_masquerade") == "false"


def test_the_api_publishes_exactly_one_port() -> None:
    api = services()["api"]
    assert api["ports"] == ["${ENCLAVE_PORT:-8000}:8000"]
    assert api["command"][api["command"].index("--port") + 1] == "8000"
    assert api["command"][api["command"].index("--host") + 1] == "0.0.0.0"


# -- health, restarts, start order -------------------------------------------------------------


def test_every_long_running_service_has_a_real_health_check() -> None:
    for name, service in services().items():
        check = service.get("healthcheck")
        assert isinstance(check, dict), f"{name} has no healthcheck"
        if check.get("disable"):
            assert name in ONE_SHOT and service.get("restart") == "no", (
                f"{name} disables its health check but is not a one-shot service")
            continue
        test = check.get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, (
            f"{name}: the healthcheck test must be a CMD or CMD-SHELL list")
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck without {key}"


def test_restart_policies() -> None:
    for name, service in services().items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == expected, f"{name}: restart {service.get('restart')!r}"


def test_every_dependency_waits_for_health_or_completion() -> None:
    all_services = services()
    for name, service in all_services.items():
        for dep, spec in depends_on(service).items():
            assert dep in all_services, f"{name} depends on unknown service {dep}"
            condition = spec.get("condition")
            if dep in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} -> {dep}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} -> {dep}: {condition}"
                assert not all_services[dep]["healthcheck"].get("disable")


def test_start_order_of_the_enclave_services() -> None:
    all_services = services()
    assert set(depends_on(all_services["migrate"])) == {"postgres"}
    assert set(depends_on(all_services["api"])) == {"qdrant", "redis", "postgres", "vllm", "migrate"}
    assert set(depends_on(all_services["worker"])) == {"qdrant", "redis", "postgres", "migrate"}
    assert all_services["migrate"]["command"] == ["db", "upgrade"]


def test_qdrant_health_check_needs_no_curl() -> None:
    # The qdrant image ships neither curl nor wget: bash's /dev/tcp asks /readyz.
    test = " ".join(services()["qdrant"]["healthcheck"]["test"])
    assert "/dev/tcp/127.0.0.1/6333" in test and "/readyz" in test
    assert "curl" not in test and "wget" not in test


# -- images ------------------------------------------------------------------------------------


def test_images_are_pinned() -> None:
    all_services = services()
    for name, service in all_services.items():
        image = service.get("image")
        assert image, f"{name} names no image (a built service must tag what it builds)"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and "latest" not in tag, f"{name}: {image} floats"
        assert re.search(r"\d", tag), f"{name}: {image}'s tag names no version"
    built = [name for name, service in all_services.items() if "build" in service]
    assert built == ["migrate"], "one service builds the image; the others run the same tag"
    for name in ENCLAVE_SERVICES:
        assert all_services[name]["image"] == "enclave:${ENCLAVE_VERSION:-0.1.0}"


def test_vllm_has_a_gpu_and_stays_offline() -> None:
    vllm = services()["vllm"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), (
        f"vllm reserves no NVIDIA GPU: {devices}")
    assert devices[0]["count"] == "${VLLM_GPUS:-1}"
    env = vllm["environment"]
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"):
        assert env.get(key) == "1", f"vllm: {key} is not 1"
    assert vllm.get("ipc") == "host" or vllm.get("shm_size"), "vllm needs shared memory"
    assert vllm["volumes"] == ["${MODEL_CACHE:-./models}:/root/.cache/huggingface"]
    args = vllm["command"]
    value = {flag: args[i + 1] for i, flag in enumerate(args) if flag.startswith("--")}
    assert value["--api-key"] == "${VLLM_API_KEY:?set VLLM_API_KEY in .env}"
    assert value["--tensor-parallel-size"] == "${VLLM_TENSOR_PARALLEL:-1}"
    # enclave asks for the name vLLM serves, and fits passages into the window vLLM allows.
    shared = compose()["x-enclave-env"]
    assert value["--served-model-name"] == shared["ENCLAVE_LLM__MODEL"]
    assert value["--max-model-len"] == shared["ENCLAVE_LLM__CONTEXT_TOKENS"]


def test_workers_scale() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker, "a container_name stops --scale worker=N"
    assert "ports" not in worker
    assert worker["command"][:2] == ["worker", "--concurrency"]


# -- volumes ------------------------------------------------------------------------------------


def test_uploads_and_documents_are_where_the_settings_say() -> None:
    all_services = services()
    shared = compose()["x-enclave-env"]
    uploads = f"uploads:{shared['ENCLAVE_JOBS__UPLOAD_DIR']}"
    documents = "${DOCUMENTS_DIR:-./documents}:/srv/documents:ro"
    assert shared["ENCLAVE_JOBS__ALLOWED_ROOTS"] == '["/srv/documents"]'
    for name in ("api", "worker"):
        volumes = all_services[name]["volumes"]
        assert uploads in volumes, f"{name} does not see the uploads"
        assert documents in volumes, f"{name} does not see the documents (read-only)"
        assert f"data:{shared['ENCLAVE_DATA_DIR']}" in volumes
    declared = set(compose()["volumes"])
    for name, service in all_services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("${", ".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    persistent = {"qdrant": "/qdrant/storage", "postgres": "/var/lib/postgresql/data", "redis": "/data"}
    for name, path in persistent.items():
        assert any(v.endswith(f":{path}") for v in all_services[name]["volumes"]), f"{name} loses data"


# -- secrets and .env.example -------------------------------------------------------------------


def test_secrets_are_never_written_in_compose() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for name, op, _ in interpolations(text):
        if name in SECRET_VARS:
            assert op in (":?",), f"${{{name}}} must be required (:?), never defaulted"
    # Every value of a secret-looking key, and every password in a URL, is interpolated.
    secret_key = re.compile(r"PASSWORD|API_KEY|SECRET|REDISCLI_AUTH|_TOKEN$")
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if secret_key.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), f"{name}.{key} is literal"
        args = service.get("command") or []
        for flag, value in itertools.pairwise(args):
            if flag in ("--api-key", "--requirepass"):
                assert str(value).startswith("${"), f"{name} {flag} is literal"
    for value in strings(compose()):
        # Interpolations first become one token, so that a message with spaces ends no URL.
        value = _INTERPOLATION.sub("${VAR}", value)
        for url in re.findall(r"[a-z+]+://[^\s'\"]+", value):
            userinfo = url.split("://", 1)[1].split("@", 1)
            if len(userinfo) == 2 and ":" in userinfo[0]:
                password = userinfo[0].split(":", 1)[1]
                assert password.startswith("${"), f"a literal password in {url}"


def test_env_example_defines_what_compose_needs() -> None:
    example = env_example()
    # No bare $VAR (compose would read it too, but it hides from these checks).
    stripped = _INTERPOLATION.sub("", COMPOSE.read_text(encoding="utf-8").replace("$$", ""))
    assert "$" not in stripped, "write variables as ${VAR}"
    used = interpolations(COMPOSE.read_text(encoding="utf-8"))
    required = {name for name, op, _ in used if op in (None, ":?", "?")}
    missing = sorted(required - set(example))
    assert not missing, f".env.example lacks {missing}"
    # Nothing stale: every variable of .env.example is used by compose.yaml.
    stale = sorted(set(example) - {name for name, _, _ in used})
    assert not stale, f".env.example sets variables compose.yaml does not use: {stale}"
    # A copied .env.example changes nothing but the secrets: its values are compose's defaults.
    for name, op, arg in used:
        if op == ":-" and name in example:
            assert example[name] == arg, f"{name}: .env.example says {example[name]}, compose {arg}"
    for name in SECRET_VARS:
        assert "change-me" in example[name], f"{name} in .env.example must be a change-me placeholder"


def test_every_compose_setting_reaches_the_enclave_services() -> None:
    doc = compose()
    shared = doc["x-enclave-env"]
    for name in ENCLAVE_SERVICES:
        service = doc["services"][name]
        assert service.get("env_file") == ".env", f"{name} does not read .env"
        environment = service["environment"]
        for key, value in shared.items():
            assert environment.get(key) == value, f"{name}: {key} differs from x-enclave-env"
    assert doc["services"]["worker"]["environment"]["ENCLAVE_JOBS__METRICS_PORT"] == "9101"
    for key in ("ENCLAVE_ENV", "ENCLAVE_DATABASE_MIGRATE", "HF_HUB_OFFLINE", "DO_NOT_TRACK"):
        assert key in shared
    assert shared["ENCLAVE_ENV"] == "production"
    assert shared["ENCLAVE_DATABASE_MIGRATE"] == "verify"


# -- the settings these variables set -----------------------------------------------------------


def _field_path(variable: str) -> list[str]:
    return variable.removeprefix("ENCLAVE_").lower().split("__")


def _resolve(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    annotation = field.annotation
    return isinstance(annotation, type) and issubclass(annotation, BaseModel) and _resolve(
        annotation, path[1:])


def enclave_variables() -> set[str]:
    doc = compose()
    names = set(doc["x-enclave-env"])
    for service in doc["services"].values():
        names |= set(service.get("environment") or {})
    names |= set(env_example())
    return {n for n in names if n.startswith("ENCLAVE_")}


def test_every_enclave_variable_is_a_setting() -> None:
    from core.settings import Settings

    variables = enclave_variables() - COMPOSE_ONLY
    unknown = sorted(v for v in variables if not _resolve(Settings, _field_path(v)))
    assert not unknown, f"not settings of core.settings.Settings (silently ignored): {unknown}"
    for variable in COMPOSE_ONLY:
        assert not _resolve(Settings, _field_path(variable)), f"{variable} collides with a setting"


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from core.settings import Settings

    for key in list(os.environ):
        if key.startswith("ENCLAVE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_an_unedited_env_file_cannot_start_production(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings_from(container_env("api", env_example()), monkeypatch)
    message = str(refused.value)
    for variable in PLACEHOLDER_SETTINGS:
        assert variable in message, f"a placeholder {variable} was accepted"


def test_the_migrate_service_refuses_an_unedited_env_file() -> None:
    # What `docker compose up` would run first: `enclave db upgrade` with migrate's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env |= container_env("migrate", env_example()) | {"COLUMNS": "200"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "enclave"), *services()["migrate"]["command"]],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for variable in PLACEHOLDER_SETTINGS:
        assert variable in output, f"the refusal does not name {variable}: {output}"
    assert "change-me" not in output, "the refusal echoes a secret's value"


def test_the_compose_environment_parses_into_production_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = env_example() | {name: f"{name.lower()}-0123456789abcdef" for name in SECRET_VARS}
    for service in ("api", "worker"):
        settings = _settings_from(container_env(service, env), monkeypatch)
        assert settings.env == "production"
        assert settings.database_migrate == "verify"
        assert str(settings.data_dir) == "/var/lib/enclave"
        assert settings.database_url == (
            f"postgresql+psycopg://enclave:{env['POSTGRES_PASSWORD']}@postgres:5432/enclave")
        assert settings.qdrant.mode == "server" and settings.qdrant.url == "http://qdrant:6333"
        assert settings.qdrant.api_key == env["QDRANT_API_KEY"]
        assert (settings.qdrant.shards, settings.qdrant.replication_factor) == (1, 1)
        assert settings.jobs.broker_url == f"redis://:{env['REDIS_PASSWORD']}@redis:6379/0"
        assert [str(p) for p in settings.jobs.allowed_roots] == ["/srv/documents"]
        assert str(settings.resolved_upload_dir) == "/var/lib/enclave/uploads"
        assert settings.llm.mode == "openai" and settings.llm.base_url == "http://vllm:8000/v1"
        assert settings.llm.model == env["VLLM_SERVED_NAME"]
        assert settings.llm.api_key == env["VLLM_API_KEY"]
        assert (settings.llm.context_tokens, settings.llm.max_tokens) == (8192, 512)
        assert settings.serve.metrics_token == env["METRICS_TOKEN"]
        assert (settings.log.format, settings.log.level, settings.log.content) == ("json", "INFO", False)
        assert settings.jobs.metrics_port == (9101 if service == "worker" else None)


def test_the_audit_seal_key_is_a_secret_file_outside_the_data_volume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = compose()
    secret = doc["secrets"]["audit_seal_key"]
    assert secret == {"file": "${AUDIT_SEAL_KEY_FILE:-./secrets/audit-seal.key}"}
    assert env_example()["AUDIT_SEAL_KEY_FILE"] == "./secrets/audit-seal.key"
    # Those who append records hold the key; the one-shot migration does not.
    for name in ("api", "worker"):
        assert doc["services"][name].get("secrets") == ["audit_seal_key"], name
    assert "secrets" not in doc["services"]["migrate"]
    env = env_example() | {name: f"{name.lower()}-0123456789abcdef" for name in SECRET_VARS}
    settings = _settings_from(container_env("api", env), monkeypatch)
    assert str(settings.audit.seal_key_file) == "/run/secrets/audit_seal_key"
    data_dir = str(settings.resolved_data_dir)
    assert not str(settings.resolved_seal_key_file).startswith(data_dir + "/")
