"""Every etl module imports on its own: no import cycle hides behind the order modules happen to load in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import etl

MODULES = sorted(
    ".".join(("etl", *path.relative_to(Path(etl.__file__).parent).with_suffix("").parts)).removesuffix(".__init__")
    for path in Path(etl.__file__).parent.rglob("*.py")
)

# A fresh interpreter loads every module once (so the third-party libraries are in memory), forgets every
# etl module, then forks one child per module: each child starts with no etl module loaded and imports
# only its own. A fork costs milliseconds where a new interpreter per module would cost a second.
_PROBE = """
import importlib, os, sys, traceback
modules = sys.argv[1:]
for name in modules:
    importlib.import_module(name)
for name in [name for name in sys.modules if name == "etl" or name.startswith("etl.")]:
    del sys.modules[name]
failed = []
for name in modules:
    pid = os.fork()
    if pid == 0:
        try:
            assert not any(loaded == "etl" or loaded.startswith("etl.") for loaded in sys.modules)
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(name)
print("failed:", " ".join(failed))
sys.exit(1 if failed else 0)
"""


def test_the_module_list_is_complete() -> None:
    assert {"etl.client", "etl.settings", "etl.datatypes", "etl.datatypes.prices", "etl.paging"} <= set(MODULES)
    assert len(MODULES) > 30


def test_every_module_imports_alone_in_a_fresh_process() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, *MODULES], capture_output=True, text=True, timeout=120,
                            cwd=Path(etl.__file__).parent.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "failed:"


def test_settings_do_not_import_the_data_types_or_the_client() -> None:
    """The cycle that was: settings -> registry -> type modules -> client -> settings."""
    code = "import sys, etl.settings; print(sorted(m for m in sys.modules if m.startswith('etl.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(etl.__file__).parent.parent, check=True).stdout
    assert loaded.strip() == "['etl.api', 'etl.exitcodes', 'etl.settings']"  # exitcodes: --help's epilog


def test_no_test_module_imports_conftest_or_another_test_module() -> None:
    """Shared helpers reach the tests as fixtures (importing conftest makes a second copy of it) or from a
    helper module (tests/fake_nepse.py, tests/raw_prices.py, tests/virtual_time.py), never from a test module."""
    tests = Path(__file__).parent
    forbidden = re.compile(r"^\s*(?:from|import)\s+tests\.(?:conftest|test_\w+)\b", re.MULTILINE)
    importing = {path.name: forbidden.findall(path.read_text()) for path in sorted(tests.glob("*.py"))}
    assert {name: found for name, found in importing.items() if found} == {}


def test_the_cli_takes_its_exit_codes_from_exitcodes_alone() -> None:
    """One table of exit codes (etl/exitcodes.py); the CLI maps what ended a run early onto it without loading
    the run report's module (or anything of a run) before a run starts."""
    code = ("import sys, etl.cli, etl.exitcodes; print(sorted(m for m in sys.modules if m.startswith('etl.'))); "
            "print(set(etl.cli.EXIT_CODES.values()) <= {row[0] for row in etl.exitcodes.EXIT_CODE_TABLE})")
    loaded, documented = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                        cwd=Path(etl.__file__).parent.parent, check=True).stdout.splitlines()
    assert loaded == "['etl.api', 'etl.cli', 'etl.diskspace', 'etl.errors', 'etl.exitcodes', 'etl.settings']"
    assert documented == "True"


def test_no_process_of_a_run_loads_pyarrows_remote_filesystems() -> None:
    """etl/__init__.py: the raw zone is local; S3, GCS, Azure and HDFS support would cost ~4 MB a process."""
    remote = ("pyarrow._s3fs", "pyarrow._gcsfs", "pyarrow._azurefs", "pyarrow._hdfs")
    assert _loaded_after("import etl.extract, etl.load, etl.rawzone, pyarrow.fs", remote) == "[]"


def test_a_spawned_helper_process_imports_nothing_it_does_not_run() -> None:
    """A spawned child re-imports the main script as __mp_main__ first; the log manager then runs only
    etl.procs.quiet_child. Neither may pull in the CLI or loguru (measured: the log manager 28 -> 20 MB)."""
    imports = "import runpy; runpy.run_path('scripts/backfill.py', run_name='__mp_main__'); import etl.procs"
    assert _loaded_after(imports, ("etl.cli", "etl.settings", "loguru", "pyarrow", "aiohttp")) == "[]"


def _loaded_after(imports: str, names: tuple[str, ...]) -> str:
    """Which of `names` a fresh interpreter has loaded after running `imports` (a None entry is not loaded)."""
    code = f"import sys; {imports}; print(sorted(name for name in {names!r} if sys.modules.get(name) is not None))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(etl.__file__).parent.parent, check=True).stdout.strip()
