"""Splunk's Python interpreters on this machine: pyenv's 3.9 and 3.13 (what Splunk 9.3+ and 10.2+
run custom commands with), for the tests and the benchmark."""
import glob
import os
import subprocess

SPLUNK_PYTHONS = ("3.9", "3.13")


def pyenv_root():
    root = os.environ.get("PYENV_ROOT")
    if not root:
        try:
            root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = ""
    return root or os.path.expanduser("~/.pyenv")


def pyenv_python(version):
    """The newest pyenv python<version> (e.g. "3.9"), or None."""
    found = sorted(glob.glob(os.path.join(pyenv_root(), "versions", version + ".*", "bin", "python" + version)))
    return found[-1] if found else None
