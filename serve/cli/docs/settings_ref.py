"""``docs/reference/settings.md``, written from ``core.settings.Settings``: one row per variable.

core/settings.py explains its fields in ``#`` comments above them rather than in
``Field(description=...)``, so the comments are read from the source (a description, if a
field gets one, wins). Defaults are shown as written in the code, never resolved on this
machine, so the page is the same wherever it is generated.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
import types
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeGuard, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from core.settings import Settings
from serve.cli.docs.cli_ref import cell

TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}


@dataclass(frozen=True)
class Setting:
    env: str  # e.g. ENCLAVE_SERVE__PORT
    section: str  # the model's dotted path, e.g. "serve.oidc"; "" for top-level fields
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Section:
    path: str
    prefix: str  # e.g. ENCLAVE_SERVE__OIDC__
    doc: str
    settings: tuple[Setting, ...]


def _prefix_and_delimiter(model: type[Settings] = Settings) -> tuple[str, str]:
    config = model.model_config
    return str(config.get("env_prefix") or ""), str(config.get("env_nested_delimiter") or "__")


def sections(model: type[BaseModel] = Settings) -> list[Section]:
    """Every model, from the top, with its leaf fields (nested models become sections)."""
    prefix, delimiter = _prefix_and_delimiter()
    found: list[Section] = []

    def visit(cls: type[BaseModel], path: str, env_prefix: str) -> None:
        comments = field_comments(cls)
        rows = []
        nested: list[tuple[type[BaseModel], str, str]] = []
        for name, field in cls.model_fields.items():
            env = f"{env_prefix}{name.upper()}"
            annotation = field.annotation
            if _is_model(annotation):
                nested.append((annotation, f"{path}.{name}".lstrip("."), f"{env}{delimiter}"))
                continue
            description = field.description or comments.get(name, "")
            rows.append(Setting(env, path, type_name(field.annotation, field.metadata),
                                default_text(field), description))
        # The class's own docstring only: an undocumented model would inherit BaseModel's.
        own = cls.__dict__.get("__doc__")
        doc = inspect.cleandoc(own) if own and cls is not model else ""
        found.append(Section(path, env_prefix, doc, tuple(rows)))
        for sub, sub_path, sub_prefix in nested:
            visit(sub, sub_path, sub_prefix)

    visit(model, "", prefix)
    return found


def settings_rows() -> list[Setting]:
    return [s for section in sections() for s in section.settings]


def setting_env_names() -> set[str]:
    """Every variable the settings read, e.g. ``ENCLAVE_SERVE__OIDC__ISSUER``."""
    return {s.env for s in settings_rows()}


def section_prefixes() -> set[str]:
    """Every nested section's prefix, e.g. ``ENCLAVE_SERVE__`` and ``ENCLAVE_SERVE__OIDC__``."""
    return {s.prefix for s in sections() if s.path}


def _is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def field_comments(cls: type) -> dict[str, str]:
    """The ``#`` comment lines directly above each annotated field of a class."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    tree = ast.parse(source)
    found: dict[str, str] = {}
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            comment: list[str] = []
            index = node.lineno - 2  # the line above, 0-based
            while index >= 0 and lines[index].strip().startswith("#"):
                comment.insert(0, lines[index].strip().lstrip("#").strip())
                index -= 1
            found[node.target.id] = _join_comment(comment)
    return found


# A comment line that starts a new item of a list ("edge: ...", "rrf, dbsf: ...",
# "onnx-int8 (default): ...") keeps its line break; other lines are one paragraph.
ITEM = re.compile(r'^"?[\w.-]+"?(, "?[\w.-]+"?)*( \(default\))?: ')


def _join_comment(lines: list[str]) -> str:
    text = ""
    for i, line in enumerate(lines):
        if i and ITEM.match(line):
            text += "\n" + line
        else:
            text += (" " if text else "") + line
    return text


def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A field's type in words; constraints (ge, le, pattern) after it."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        shown = " or ".join(type_name(a) for a in args)
    elif origin is Literal:
        shown = "one of " + ", ".join(f"`{a}`" for a in get_args(annotation))
    elif origin is list:
        shown = f"JSON list of {type_name(args[0])}s" if args else "JSON list"
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        shown = "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    else:
        shown = TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    limits = _constraints(metadata or [])
    return f"{shown} ({limits})" if limits else shown


def _constraints(metadata: list[Any]) -> str:
    # annotated_types' Ge, Le, ... and pydantic's pattern metadata, read by attribute.
    parts = []
    for item in metadata:
        for attr, shown in (("ge", "≥ {}"), ("gt", "> {}"), ("le", "≤ {}"), ("lt", "< {}"),
                            ("pattern", "matching `{}`")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(shown.format(value))
    return ", ".join(parts)


def default_text(field: FieldInfo) -> str:
    """The default as an environment variable would spell it."""
    if field.is_required():
        return "required"
    if field.default_factory is not None and field.default_factory_takes_validated_data:
        return "computed from the other settings"
    # A factory's value (an empty list, the OIDC algorithms) is as fixed as a literal default.
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, list | tuple | dict):
        return f"`{json.dumps(value, default=str)}`"
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    return f"`{value}`" if value != "" else '`""`'


def render_settings() -> str:
    prefix, delimiter = _prefix_and_delimiter()
    lines = [
        "<!-- Generated by `make docs` from the code (serve/cli/docs/settings_ref.py); do not edit. -->",
        "",
        "# Settings reference",
        "",
        f"enclave reads its settings from environment variables named `{prefix}*` (an env file "
        f"works too). Nested sections are joined with `{delimiter}`: `{prefix}SERVE{delimiter}PORT` "
        "sets `port` of the `serve` section. Lists are written as JSON "
        f"(`{prefix}JOBS{delimiter}ALLOWED_ROOTS='[\"/srv/documents\"]'`); \"unset\" means no value.",
        "",
    ]
    for section in sections():
        title = section.path or "general"
        lines += [f"## {title}", ""]
        if section.doc:
            lines += [section.doc, ""]
        if not section.settings:
            lines += [f"Only the sections below (`{section.prefix}*`).", ""]
            continue
        lines += ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
        for s in section.settings:
            description = "<br>".join(cell(part) for part in s.description.split("\n"))
            lines.append(f"| `{s.env}` | {cell(s.type)} | {cell(s.default)} | {description} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
