"""Shared test setup: import paths, the real data beside the repository, Splunk's interpreters."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin")
TOOLS = os.path.join(ROOT, "tools")
for path in (BIN, TOOLS):
    if path not in sys.path:
        sys.path.insert(0, path)

SHARED = os.path.abspath(os.environ.get("CLASSIFYPORT_SHARED", os.path.join(ROOT, "..", "shared")))


def shared_path(*parts):
    """Path inside ../shared; skips the calling test, saying so, when it is absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip("real data not found at %s (CI has ../shared beside the clone)" % path)
    return path


def _pyenv_root():
    root = os.environ.get("PYENV_ROOT")
    if not root:
        try:
            root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = ""
    return root or os.path.expanduser("~/.pyenv")


def splunk_interpreters():
    """[(label, path)] for the default Python and Splunk's 3.9 and 3.13 from pyenv."""
    found = [("default", sys.executable)]
    for version in ("3.9", "3.13"):
        candidates = sorted(glob.glob(os.path.join(_pyenv_root(), "versions", version + ".*", "bin", "python" + version)))
        found.append((version, candidates[-1] if candidates else None))
    return found


@pytest.fixture(params=splunk_interpreters(), ids=lambda item: item[0])
def python(request):
    """Each interpreter the command must run under; a missing one fails, it does not skip."""
    label, path = request.param
    if path is None:
        pytest.fail("Python %s not found under %s/versions (pyenv install %s)" % (label, _pyenv_root(), label))
    return path
