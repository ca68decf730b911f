"""--help, the settings and exit-code tables of docs/usage.md and .env.example come from one source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from etl import docgen
from etl.exitcodes import EXIT_CODE_TABLE
from etl.settings import SPECS, build_arg_parser, default_text, help_text, package_version, variable_text

REPO = Path(__file__).resolve().parent.parent


def test_usage_md_and_env_example_are_what_gen_docs_writes() -> None:
    usage = (REPO / "docs" / "usage.md").read_text(encoding="utf-8")
    assert usage == docgen.replace_blocks(usage), "docs/usage.md is out of date: run python scripts/gen_docs.py"
    env_example = (REPO / ".env.example").read_text(encoding="utf-8")
    assert env_example == docgen.env_example(), ".env.example is out of date: run python scripts/gen_docs.py"


def test_generated_tables_hold_every_setting_and_exit_code() -> None:
    tables = docgen.settings_tables()
    for spec in SPECS:
        assert f"| `{variable_text(spec)}` | {default_text(spec)} | {spec.help} |" in tables
    codes = docgen.exit_codes_table()
    for code, meaning, _ in EXIT_CODE_TABLE:
        assert f"| `{code}` | {meaning} |" in codes


def test_help_is_written_from_the_same_table() -> None:
    text = " ".join(build_arg_parser(prog="nepse-etl").format_help().split())
    for spec in SPECS:
        assert " ".join(help_text(spec).split()) in text, spec.name
    assert "Exit codes: 0 success, 1 finished" in text and "130 interrupted" in text


def test_a_changed_setting_makes_the_docs_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = (REPO / "docs" / "usage.md").read_text(encoding="utf-8")
    first = SPECS[0]
    from dataclasses import replace

    import etl.settings

    monkeypatch.setattr(etl.docgen, "SPECS", (replace(first, help="something else entirely"), *SPECS[1:]))
    assert docgen.replace_blocks(usage) != usage
    with pytest.raises(ValueError, match="no '<!-- BEGIN generated"):
        docgen.replace_blocks(usage.replace("<!-- END generated: settings -->", ""))
    assert etl.settings.SPECS[0] is first


def test_gen_docs_check_passes_on_a_current_tree() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_version_flag() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "backfill.py"), "--version"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ), cwd=REPO)
    assert done.returncode == 0
    assert done.stdout.strip() == f"backfill.py {package_version()}"
    assert package_version()[0].isdigit()


def test_pip_install_gives_the_nepse_etl_command() -> None:
    """The installed command is etl.cli:main, the same as scripts/backfill.py. (That `pip install .` in a
    fresh venv then runs the demo takes about a minute, so .ci/run does it as a step of its own.)"""
    from importlib.metadata import entry_points

    from etl.cli import main

    (script,) = entry_points(group="console_scripts", name="nepse-etl")
    assert script.load() is main
    command = Path(sys.executable).parent / "nepse-etl"
    done = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"nepse-etl {package_version()}")
    done = subprocess.run([str(command), "--limit", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: --limit='0'")
