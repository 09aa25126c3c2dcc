"""``docs/reference/http-api.md`` and ``openapi.json``, from the FastAPI app's own OpenAPI schema.

The app is built around a stand-in container: building routes and the schema reads only the
``serve`` settings (their defaults here), so no store, database or model is opened. Who may
call a route is not in OpenAPI; it is read from the route's dependencies (``require_role``).
"""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace
from typing import Any, cast

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from serve.cli.docs.cli_ref import cell, slug

METHODS = ("get", "post", "put", "patch", "delete")
LIMITS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
          ("minLength", "length ≥"), ("maxLength", "length ≤"))


def build_app() -> FastAPI:
    from core.container import Container
    from core.settings import ServeSettings
    from serve.http.app import create_app

    stand_in = SimpleNamespace(settings=SimpleNamespace(serve=ServeSettings()))
    return create_app(cast(Container, stand_in))


def openapi_schema(app: FastAPI | None = None) -> dict[str, Any]:
    return (app or build_app()).openapi()


def openapi_json(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def access(app: FastAPI) -> dict[tuple[str, str], str]:
    """(path, method) -> who may call it, from each route's dependency tree."""
    found: dict[tuple[str, str], str] = {}
    # Routes of included routers come wrapped with their prefix and dependencies, as the
    # schema sees them; iter_route_contexts is how FastAPI's own get_openapi walks them.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        roles: list[str] = []  # each one required
        any_of: list[tuple[str, ...]] = []  # one of each group required
        keyed = _walk(route.dependant, roles, any_of)
        needs = [f"the {r} role" for r in dict.fromkeys(roles)]
        needs += [f"the {' or '.join(g)} role" for g in dict.fromkeys(any_of)]
        if needs:
            shown = " and ".join(needs)
        else:
            shown = "any API key or OIDC token" if keyed else "none (no authentication)"
        for method in route.methods or ():
            found[(str(route.path_format), method.lower())] = shown
    return found


def _walk(dependant: Any, roles: list[str], any_of: list[tuple[str, ...]]) -> bool:
    """Collect the roles a route's dependencies require (serve/http/deps.py's require_role
    and require_any_role keep them in their closures); True if any asks for a caller."""
    from serve.http.deps import get_principal

    keyed = False
    for dep in dependant.dependencies:
        call = dep.call
        if call is get_principal:
            keyed = True
        if call is not None and getattr(call, "__module__", "") == "serve.http.deps":
            free = inspect.getclosurevars(call).nonlocals
            if isinstance(free.get("role"), str):
                roles.append(free["role"])
            if isinstance(free.get("roles"), tuple):
                any_of.append(tuple(str(r) for r in free["roles"]))
        keyed = _walk(dep, roles, any_of) or keyed
    return keyed


def type_of(schema: dict[str, Any]) -> str:
    """A JSON schema in a few words; component schemas link to their section below."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{slug(name)})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(dict.fromkeys(type_of(s) for s in schema[key]))
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return type_of(schema["allOf"][0])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    if kind == "object" and "title" in schema and "properties" in schema:
        return f"`{schema['title']}` (object)"
    if isinstance(kind, list):
        return " or ".join(kind)
    limits = [f"{sign} {schema[key]}" for key, sign in LIMITS if key in schema]
    limits = [schema["format"], *limits] if "format" in schema else limits
    shown = str(kind or "any")
    return f"{shown} ({', '.join(limits)})" if limits else shown


def _operation(path: str, method: str, op: dict[str, Any], who: str) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        lines += [f"**{op['summary']}**" + (f" ({', '.join(op['tags'])})" if op.get("tags") else ""), ""]
    if op.get("description"):
        lines += [op["description"].replace("``", "`"), ""]
    lines += [f"Access: {who}.", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | default | description |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for p in params:
            spec = p.get("schema", {})
            default = f"`{json.dumps(spec['default'])}`" if "default" in spec else ""
            lines.append(f"| `{p['name']}` | {p['in']} | {cell(type_of(spec))} | "
                         f"{'yes' if p.get('required') else 'no'} | {cell(default)} | "
                         f"{cell(p.get('description', '') or spec.get('description', ''))} |")
        lines.append("")
    body = op.get("requestBody")
    if body:
        kinds = [f"{type_of(c.get('schema', {}))} as `{mime}`" for mime, c in body.get("content", {}).items()]
        lines += [f"Request body{' (required)' if body.get('required') else ''}: " + "; ".join(kinds), ""]
    lines += ["| response | description | body |", "| --- | --- | --- |"]
    for status, response in sorted(op.get("responses", {}).items()):
        content = response.get("content", {})
        shown = "; ".join(f"{type_of(c.get('schema', {}))} as `{m}`" for m, c in content.items())
        lines.append(f"| {status} | {cell(response.get('description', ''))} | {cell(shown)} |")
    return [*lines, ""]


def _component(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"].replace("``", "`"), ""]
    properties = schema.get("properties", {})
    if not properties:
        return [*lines, f"Type: {type_of({k: v for k, v in schema.items() if k != 'title'})}.", ""]
    required = set(schema.get("required", ()))
    lines += ["| field | type | required | default | description |", "| --- | --- | --- | --- | --- |"]
    for field, spec in properties.items():
        default = f"`{json.dumps(spec['default'])}`" if "default" in spec else ""
        lines.append(f"| `{field}` | {cell(type_of(spec))} | {'yes' if field in required else 'no'} | "
                     f"{cell(default)} | {cell(spec.get('description', ''))} |")
    return [*lines, ""]


def render_http(app: FastAPI | None = None) -> tuple[str, str]:
    """(http-api.md, openapi.json) for the app."""
    app = app or build_app()
    schema = openapi_schema(app)
    who = access(app)
    info = schema.get("info", {})
    lines = [
        "<!-- Generated by `make docs` from the code (serve/cli/docs/http_ref.py); do not edit. -->",
        "",
        f"# HTTP API reference ({info.get('title', '')} {info.get('version', '')})",
        "",
        info.get("summary", ""),
        "",
        "The raw schema is [openapi.json](openapi.json). Every route that needs a caller takes "
        "`Authorization: Bearer <API key or OIDC token>`.",
        "",
        "## Endpoints",
        "",
    ]
    for path in sorted(schema.get("paths", {})):
        ops = schema["paths"][path]
        for method in sorted(ops, key=lambda m: METHODS.index(m) if m in METHODS else len(METHODS)):
            lines += _operation(path, method, ops[method], who.get((path, method), "unknown"))
    lines += ["## Schemas", ""]
    for name, component in sorted(schema.get("components", {}).get("schemas", {}).items()):
        lines += _component(name, component)
    return "\n".join(lines).rstrip("\n") + "\n", openapi_json(schema)
