"""Settings: defaults < .env < environment < flags, validated once, with one-line errors."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path

import pytest

from etl.settings import SPECS, ConfigError, nepal_today, resolve_settings, variable_text

REPO = Path(__file__).resolve().parent.parent


def resolve(argv: list[str], env: dict[str, str] | None = None, dotenv: str | None = None,
            tmp_path: Path | None = None):
    dotenv_path = None
    if dotenv is not None and tmp_path is not None:
        dotenv_path = tmp_path / ".env"
        dotenv_path.write_text(dotenv)
    return resolve_settings(argv, environ=env or {}, dotenv_path=dotenv_path or Path("/nonexistent/.env"))


def test_defaults() -> None:
    settings = resolve([])
    assert settings.types == ()  # every registered type: see test_pipeline's type selection
    assert (settings.max_rps, settings.concurrency, settings.pacing) == (5.0, 5, 0.2)
    assert settings.tls_verify is True
    since, until = settings.window
    assert until == nepal_today() and since == until - timedelta(days=365)


def test_the_start_method_is_a_fork_server_where_the_platform_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve([]).start_method == "forkserver"  # Linux, where the tests run
    assert resolve(["--start-method", " Spawn "]).start_method == "spawn"
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    assert resolve([]).start_method == "spawn"
    with pytest.raises(ConfigError, match="forkserver is not available on this platform; choose spawn"):
        resolve(["--start-method", "forkserver"])


def test_precedence_dotenv_then_environment_then_flags(tmp_path: Path) -> None:
    dotenv = "NEPSE_LIMIT=3\nNEPSE_MAX_RPS=2\nNEPSE_PACING=0.5\n"
    settings = resolve(["--pacing", "0.3"], env={"NEPSE_MAX_RPS": "4"}, dotenv=dotenv, tmp_path=tmp_path)
    assert (settings.limit, settings.max_rps, settings.pacing) == (3, 4.0, 0.3)


def test_symbols_are_trimmed_and_upper_cased() -> None:
    assert resolve(["--symbols", " nabil , ADBL ,,NICAD85/86"]).symbols == ("NABIL", "ADBL", "NICAD85/86")


def test_insecure_and_tls_verify_variable() -> None:
    assert resolve(["--insecure"]).tls_verify is False
    assert resolve([], env={"NEPSE_TLS_VERIFY": "false"}).tls_verify is False


@pytest.mark.parametrize(("argv", "env", "fragment"), [
    (["--types", " , "], {}, "name at least one data type"),
    (["--since", "2025-02-30"], {}, "expected a date as YYYY-MM-DD"),
    (["--limit", "0"], {}, "at least 1"),
    (["--max-rps", "fast"], {}, "expected a number"),
    (["--max-rps", "nan"], {}, "finite"),
    (["--base-url", "ftp://x"], {}, "http(s) URL"),
    (["--since", "2026-01-02", "--until", "2026-01-01"], {}, "after --until"),
    (["--load-only", "--extract-only"], {}, "exclude each other"),
    (["--page-size", "1000"], {}, "largest page"),
    ([], {"NEPSE_CONCURRENCY": "many"}, "environment variable NEPSE_CONCURRENCY"),
    (["--nope"], {}, "unrecognized arguments: --nope; see --help"),
])
def test_bad_values_name_the_setting_and_the_fix(argv: list[str], env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(argv, env=env)
    message = str(raised.value)
    assert fragment in message
    assert "\n" not in message


def test_bad_dotenv_value_and_unknown_dotenv_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NEPSE_LIMIT in .env"):
        resolve([], dotenv="NEPSE_LIMIT=ten\n", tmp_path=tmp_path)
    with pytest.raises(ConfigError, match="unknown setting NEPSE_LIMT"):
        resolve([], dotenv="NEPSE_LIMT=10\n", tmp_path=tmp_path)


def test_env_example_documents_every_setting(tmp_path: Path) -> None:
    text = (REPO / ".env.example").read_text()
    for spec in SPECS:
        assert f"# {spec.env}=" in text, spec.env
    # and the example, uncommented, is itself a valid configuration
    uncommented = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# NEPSE_"))
    example = "\n".join(line for line in uncommented.splitlines()
                        if not line.startswith(("NEPSE_CA_BUNDLE", "NEPSE_LOAD_ONLY", "NEPSE_EXTRACT_ONLY")))
    path = tmp_path / ".env"
    path.write_text(example)
    settings = resolve_settings([], environ={}, dotenv_path=path)
    assert settings.symbols == ("NABIL", "ADBL")


def test_help_is_grouped_and_complete(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        resolve(["--help"])
    assert raised.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for group in ("what to fetch", "stages", "connection", "politeness", "display"):
        assert group in text
    for spec in SPECS:
        assert spec.option in text and spec.env in text
    assert "shared by every process of every run on this machine" in text and "Exit codes" in text


def test_usage_doc_covers_every_setting_and_table() -> None:
    from etl.datatypes import REGISTRY

    text = (REPO / "docs" / "usage.md").read_text()
    for spec in SPECS:
        assert f"`{variable_text(spec)}`" in text, spec.env
    for data_type in REGISTRY.values():
        assert f"| `{data_type.table}` |" in text


def test_an_unknown_nepse_name_is_refused_alike_from_the_environment_and_dotenv(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as from_environment:
        resolve_settings([], environ={"NEPSE_MAXRPS": "1"}, dotenv_path=tmp_path / ".env")
    (tmp_path / ".env").write_text("NEPSE_MAXRPS=1\n")
    with pytest.raises(ConfigError) as from_dotenv:
        resolve_settings([], environ={}, dotenv_path=tmp_path / ".env")
    assert str(from_environment.value).startswith("unknown setting NEPSE_MAXRPS in the environment; ")
    assert str(from_dotenv.value).startswith(f"unknown setting NEPSE_MAXRPS in {tmp_path / '.env'}; ")
    for refused in (from_environment.value, from_dotenv.value):
        assert "did you mean NEPSE_MAX_RPS?" in str(refused)
