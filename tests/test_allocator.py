"""repro.allocator: when CPU training is re-executed under tcmalloc, and what the entry points do with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from repro.allocator import (
    ENV_CHOICE,
    LARGE_ALLOC_REPORT,
    allocator_in_use,
    find_tcmalloc,
    preload_environment,
)

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = "libtcmalloc_minimal.so.4"


def test_preloads_a_found_library_once():
    environ = preload_environment({"PATH": "/bin"}, LIBRARY, "linux")
    assert environ["LD_PRELOAD"] == LIBRARY and environ["PATH"] == "/bin"
    assert int(environ[LARGE_ALLOC_REPORT]) >= 1 << 40
    assert allocator_in_use(environ) == "tcmalloc"
    assert preload_environment(environ, LIBRARY, "linux") is None  # the re-executed process goes on


def test_keeps_an_existing_preload_and_a_user_report_threshold():
    environ = preload_environment({"LD_PRELOAD": "libfoo.so", LARGE_ALLOC_REPORT: "5"}, LIBRARY, "linux")
    assert environ["LD_PRELOAD"] == f"{LIBRARY} libfoo.so" and environ[LARGE_ALLOC_REPORT] == "5"


@pytest.mark.parametrize("environ, library, platform", [
    ({ENV_CHOICE: "system"}, LIBRARY, "linux"),  # asked to keep glibc
    ({}, None, "linux"),  # not installed
    ({}, LIBRARY, "darwin"),  # not Linux
    ({"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"}, LIBRARY, "linux"),  # already preloaded
])
def test_goes_on_unchanged(environ, library, platform):
    assert preload_environment(environ, library, platform) is None
    assert allocator_in_use(environ) == ("tcmalloc" if "LD_PRELOAD" in environ else "system")


def test_unknown_choice_is_one_clear_line():
    with pytest.raises(ValueError, match=f"{ENV_CHOICE}='jemalloc' is not one of"):
        preload_environment({ENV_CHOICE: "jemalloc"}, LIBRARY, "linux")
    done = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", ENV_CHOICE: "jemalloc"})
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and ENV_CHOICE in done.stderr


@pytest.mark.skipif(find_tcmalloc() is None or not sys.platform.startswith("linux"),
                    reason="no libtcmalloc on this machine (apt install libtcmalloc-minimal4)")
def test_entry_point_reexecutes_under_tcmalloc(tmp_path):
    script = tmp_path / "entry.py"
    script.write_text("import sys\nfrom repro.allocator import prefer_tcmalloc\nprefer_tcmalloc()\n"
                      "mapped = 'tcmalloc' in open('/proc/self/maps').read()\nprint(mapped, sys.argv[1:])\n")
    done = subprocess.run([sys.executable, str(script), "a=1", "b"], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")})
    assert done.stdout.strip() == "True ['a=1', 'b']"  # the library is loaded, the arguments are kept
