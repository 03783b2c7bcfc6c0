"""fusionrec.allocator: glibc's malloc thresholds, set once, with an opt-out."""
from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "from fusionrec.allocator import keep_freed_memory as k; print(k(), k())"


def _run(env_value: str | None, **extra: str) -> str:
    import os

    env = {key: v for key, v in os.environ.items() if key != "FUSIONREC_KEEP_FREED_MEMORY"
           and not key.startswith("MALLOC_") and key != "GLIBC_TUNABLES"}
    if env_value is not None:
        env["FUSIONREC_KEEP_FREED_MEMORY"] = env_value
    env.update(extra)
    return subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_thresholds_are_set_once_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc: nothing to tune")
    assert _run(None) == "True True"


@pytest.mark.parametrize("value", ["0", "off"])
def test_the_environment_turns_it_off(value):
    assert _run(value) == "False False"


@pytest.mark.parametrize("extra", [{"MALLOC_MMAP_THRESHOLD_": "65536"},
                                   {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}])
def test_glibc_settings_from_the_environment_win(extra):
    assert _run(None, **extra) == "False False"
