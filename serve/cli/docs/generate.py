"""Write the references under docs/reference/ from the code (``make docs``).

    python -m serve.cli.docs           write cli.md, settings.md, http-api.md, openapi.json
    python -m serve.cli.docs --check   exit 1 and name the files that are out of date
    python -m serve.cli.docs --stats   what each Markdown file shows of the CLI and settings

tests/serve/cli/docs/test_docs.py fails when a generated file differs from what this writes now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serve.cli.docs.cli_ref import ROOT

REFERENCE_DIR = Path("docs/reference")


def render_all() -> dict[Path, str]:
    """Each generated file (relative to the repository) and its content."""
    # Imported here: each renderer loads a part of the app (typer tree, settings, FastAPI).
    from serve.cli.docs.cli_ref import render_cli
    from serve.cli.docs.http_ref import render_http
    from serve.cli.docs.settings_ref import render_settings

    http_md, openapi = render_http()
    return {
        REFERENCE_DIR / "cli.md": render_cli(),
        REFERENCE_DIR / "settings.md": render_settings(),
        REFERENCE_DIR / "http-api.md": http_md,
        REFERENCE_DIR / "openapi.json": openapi,
    }


def stale_files(root: Path = ROOT, rendered: dict[Path, str] | None = None) -> list[Path]:
    """The generated files whose content on disk is not what the code gives now."""
    rendered = rendered or render_all()
    stale = []
    for relative, content in rendered.items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(relative)
    return stale


def write_all(root: Path = ROOT) -> list[Path]:
    written = []
    for relative, content in render_all().items():
        path = root / relative
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(relative)
    return written


def stats(root: Path = ROOT) -> list[str]:
    """Per Markdown file: distinct ``enclave`` commands shown, distinct ``ENCLAVE_*`` names."""
    from serve.cli.docs.checks import find_commands, find_settings, iter_files
    from serve.cli.docs.cli_ref import cli_root
    from serve.cli.docs.commands import check_command

    command_tree = cli_root()
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    lines = [f"{'file':<28} {'commands':>8} {'settings':>8}"]
    for name, _, text in iter_files(root, [f for f in files if f.is_file()]):
        commands = {use.shown for found in find_commands(name, text)
                    for use in check_command(command_tree, found.text).uses}
        settings = {found.text for found in find_settings(name, text)}
        lines.append(f"{name:<28} {len(commands):>8} {len(settings):>8}")
    readme = root / "README.md"
    if readme.is_file():
        lines.append(f"README.md lines: {len(readme.read_text(encoding='utf-8').splitlines())}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.cli.docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    mode.add_argument("--stats", action="store_true", help="print what the docs show")
    args = parser.parse_args(argv)
    if args.stats:
        print("\n".join(stats()))
        return 0
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path.as_posix()} (run make docs)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all():
        print(f"wrote {path.as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
