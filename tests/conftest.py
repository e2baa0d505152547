"""Shared test setup: import paths, the real data beside the repository, Splunk's interpreters."""
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin")
TOOLS = os.path.join(ROOT, "tools")
for path in (BIN, TOOLS):
    if path not in sys.path:
        sys.path.insert(0, path)

import pythons  # noqa: E402 (tools/, on the path above)

SHARED = os.path.abspath(os.environ.get("CLASSIFYPORT_SHARED", os.path.join(ROOT, "..", "shared")))


def shared_path(*parts):
    """Path inside ../shared; skips the calling test, saying so, when it is absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip("real data not found at %s (CI has ../shared beside the clone)" % path)
    return path


def _pyenv_root():
    return pythons.pyenv_root()


def splunk_interpreters():
    """[(label, path)] for the default Python and Splunk's 3.9 and 3.13 from pyenv."""
    return [("default", sys.executable)] + [(version, pythons.pyenv_python(version))
                                            for version in pythons.SPLUNK_PYTHONS]


@pytest.fixture(params=splunk_interpreters(), ids=lambda item: item[0])
def python(request):
    """Each interpreter the command must run under; a missing one fails, it does not skip."""
    label, path = request.param
    if path is None:
        pytest.fail("Python %s not found under %s/versions (pyenv install %s)" % (label, _pyenv_root(), label))
    return path


def make_app(directory):
    """A copy of the app in `directory`: bin/ (with splunklib), default/, lookups/; and a dispatch dir."""
    root = directory / "classifyport"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("bin", "default", "lookups"):
        shutil.copytree(os.path.join(ROOT, part), str(root / part), ignore=ignore)
    (directory / "dispatch").mkdir()
    return root
