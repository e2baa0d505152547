"""Security review (issue 5): what the packaged code may import and do, checked statically and
at run time.

* Static: every shipped Python file that is ours (the package's own file list, less the
  vendored splunklib) passes tools/security_scan.py: no network, process, deserialisation,
  eval/exec, dynamic-import, native-code or file-writing facility. bandit finds nothing (or
  each finding carries a `# nosec` with its reason).
* Run time, under audit hooks (sys.addaudithook in a wrapper that then runs the command as
  splunkd would): a full conversation opens no socket, starts no process, writes no file,
  builds no splunklib.client.Service or binding.Context and reads no file but its own
  lookups; every option given a path (../../etc/passwd, /etc/passwd, C:\\x, lookups/../x) and
  the SDK's removed path options are refused or taken as a field name, and no such path is
  ever opened.
* Read-only app: the command runs with the app directory mounted read-only (a private mount
  namespace; see readonly_runner for the fallbacks) and the dispatch directory as the only
  writable place, and writes nothing anywhere.

tests/test_options_and_errors.py::test_command_reads_only_its_lookups_and_writes_no_file is
the first audit test (one conversation, reads and writes); this file extends it to the SDK's
network classes, imports, every option and a read-only app, rather than repeating it.
"""
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

import build_package
import scpv2
import security_scan
from conftest import ROOT, make_app as copy_app

OPTIONS = ("profile", "mode", "direction", "allowlist", "ports", "image", "port", "dest")
PATHS = ("../../etc/passwd", "/etc/passwd", "C:\\x", "lookups/../x")
ALLOWLIST = ("process,dest_cidr,port,host,user,reason,expires\n"
             "powershell.exe,10.0.0.0/8,,,,IT automation,\n"
             ",,53,DNS-*,,DNS servers,\n"
             "*\\ccmcache\\*,,,,,SCCM cache,\n")
# Audit events that mean the network, a process, native code or a change to the file system.
WATCHED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
           "os.startfile", "os.kill", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.chmod", "os.chown",
           "os.link", "os.symlink", "os.truncate", "os.putenv", "os.unsetenv", "os.chdir", "shutil.", "tempfile.",
           "ctypes.", "http.client.", "urllib.", "ftplib.", "smtplib.", "poplib.", "imaplib.", "nntplib.",
           "telnetlib.", "webbrowser.", "pickle.", "shelve.", "sqlite3.", "glob.", "pty.",
           "winreg.", "msvcrt.", "syslog.", "resource.setrlimit", "sys.remote_exec")

AUDIT_WRAPPER = r'''
"""Runs a command script the way splunkd does, under an audit hook; prints what it did to stderr."""
import json, os, sys
COMMAND = sys.argv[1]
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WATCHED = tuple(json.loads(sys.argv[2]))
log = {"opens": [], "events": [], "imports": [], "created": []}
state = {"on": True}

def hook(event, args):
    if not state["on"]:
        return
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (isinstance(flags, int) and bool(flags & WRITE))
        name = os.fsdecode(path) if isinstance(path, (str, bytes)) else repr(path)
        log["opens"].append(["write" if writes else "read", name])
    elif event == "import":
        log["imports"].append(args[0])
    elif event.startswith(WATCHED):
        log["events"].append([event, repr(args)[:300]])

sys.addaudithook(hook)
# The wrapper's own imports write no bytecode; the command's do unless it says otherwise.
sys.dont_write_bytecode = True
# The command's own first import: what it pulls in, before anything else runs.
import splunklib.searchcommands  # noqa: E402
log["sdk_imports"] = sorted(set(log["imports"]))
# Count every splunkd REST object the command might build or use.
import splunklib.binding  # noqa: E402
import splunklib.client  # noqa: E402

def counting(name, function):
    def wrapper(*args, **kwargs):
        log["created"].append(name)
        return function(*args, **kwargs)
    return wrapper

splunklib.client.Service.__init__ = counting("client.Service", splunklib.client.Service.__init__)
splunklib.binding.Context.__init__ = counting("binding.Context", splunklib.binding.Context.__init__)
splunklib.binding.HttpLib.__init__ = counting("binding.HttpLib", splunklib.binding.HttpLib.__init__)
splunklib.binding.HttpLib.request = counting("binding.HttpLib.request", splunklib.binding.HttpLib.request)
import runpy  # noqa: E402
sys.argv = [COMMAND]
sys.dont_write_bytecode = False
try:
    runpy.run_path(COMMAND, run_name="__main__")
finally:
    state["on"] = False
    sys.stderr.write("\nAUDIT " + json.dumps(log) + "\n")
'''


# --------------------------------------------------------------------------- static

def shipped_python(tmp_path):
    """{path inside the package: source} of every .py file the built package holds."""
    path, _ = build_package.build(str(tmp_path))
    found = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                found[member.name.split("/", 1)[1]] = archive.extractfile(member).read().decode("utf-8")
    return found


def test_the_package_ships_no_python_of_ours_that_the_scan_misses(tmp_path):
    shipped = shipped_python(tmp_path)
    ours = sorted(path for path in shipped if not path.startswith(security_scan.SDK_PREFIX))
    assert ours == sorted(security_scan.our_files())
    assert "bin/classifyport.py" in ours and "bin/portclassify/classifier.py" in ours
    assert sorted(set(shipped) - set(ours)) and all(path.startswith("bin/splunklib/") for path in set(shipped) - set(ours))
    findings = []
    for path in ours:       # the archive's bytes, not the work tree's
        package = path[len("bin/"):].rsplit("/", 1)[0].replace("/", ".") if path.count("/") >= 2 else ""
        findings.extend(security_scan.scan_source(shipped[path], path, package))
    assert findings == [], "\n".join("%s:%d: %s" % finding for finding in findings)


def test_security_scan_tool_passes():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "security_scan.py"), "--sdk"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert b"0 finding(s)" in proc.stdout


@pytest.mark.parametrize("source, problem", [
    ("import socket", "socket"),
    ("import urllib.request", "urllib"),
    ("from http import client", "http"),
    ("import subprocess", "subprocess"),
    ("from os import system", "os.system"),
    ("import os\nos.system('x')", "os.system"),
    ("import os as o\no.popen('x')", "os.popen"),
    ("import os\nos.execv('x', [])", "os.execv"),
    ("import os\nos.posix_spawn('x', [], {})", "os.posix_spawn"),
    ("import pickle", "pickle"),
    ("import marshal", "marshal"),
    ("import shelve", "shelve"),
    ("eval('1')", "eval"),
    ("exec('1')", "exec"),
    ("compile('1', 'x', 'eval')", "compile"),
    ("__import__('os')", "__import__"),
    ("import importlib", "importlib"),
    ("from importlib import import_module", "importlib"),
    ("import ctypes", "ctypes"),
    ("import tempfile", "tempfile"),
    ("import shutil", "shutil"),
    ("open('x', 'w')", "writing"),
    ("open('x', mode='a')", "writing"),
    ("open('x', 'r+b')", "writing"),
    ("open('x', m)", "not a constant"),
    ("import io\nio.open('x', 'wb')", "writing"),
    ("import os\nos.open('x', os.O_WRONLY)", "os.open"),
    ("import os\nos.remove('x')", "os.remove"),
    ("import os\ngetattr(os, 'system')('x')", "getattr"),
    ("getattr(x, name)", "computed"),
    ("from splunklib import client", "splunklib.client"),
    ("import splunklib.binding", "splunklib.binding"),
    ("self.service.jobs", ".service"),
    ("import yaml", "REVIEWED_IMPORTS"),
    ("input()", "input"),
])
def test_scanner_catches(source, problem):
    findings = security_scan.scan_source(source, "x.py", "portclassify")
    assert findings and any(problem in text for _, _, text in findings), findings


@pytest.mark.parametrize("source", [
    "import os\nos.path.join('a', 'b')",
    "open(path, 'rb')",
    "open(path, encoding='utf-8')",
    "import os\nos.stat(path)",
    "from . import lookups\nfrom .csvfile import read_rows",
    "from splunklib.searchcommands import dispatch",
    "import os\nos.dup2(os.open(os.devnull, os.O_WRONLY), 1)",
])
def test_scanner_allows(source):
    assert security_scan.scan_source(source, "x.py", "portclassify") == []


def test_what_the_vendored_sdk_imports():
    """Information (README, Security review): the SDK's network and process code, and the one
    module-level import that brings it into our process without our code ever calling it."""
    inventory = security_scan.sdk_inventory()
    for path, modules in sorted(inventory.items()):
        print("%s: %s" % (path, ", ".join(modules)))
    assert {"socket", "ssl"} <= set(inventory["bin/splunklib/binding.py"])
    assert "splunklib.client" in inventory["bin/splunklib/searchcommands/search_command.py"]
    assert "subprocess" in inventory["bin/splunklib/searchcommands/external_search_command.py"]
    # The only place a search command builds a Service is SearchCommand.service, a property;
    # nothing in splunklib.searchcommands reads it, and our code never names it (the scan).
    searchcommands = os.path.join(ROOT, "bin", "splunklib", "searchcommands")
    users = []
    for name in sorted(os.listdir(searchcommands)):
        if name.endswith(".py"):
            with open(os.path.join(searchcommands, name), encoding="utf-8") as handle:
                text = handle.read()
            users += ["%s: %s" % (name, line.strip()) for line in text.splitlines()
                      if re.search(r"\.service\b|Service\(", line)]
    assert users == ["search_command.py: self._service = Service("], users


def test_bandit_is_clean():
    if importlib.util.find_spec("bandit") is None:
        pytest.skip("bandit is not installed here (requirements-dev.txt pins it; `make venv` installs it)")
    proc = subprocess.run([sys.executable, "-m", "bandit", "-q", "-f", "json", "-r", "bin/classifyport.py",
                           "bin/portclassify"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    report = json.loads(proc.stdout.decode("utf-8"))
    assert report["errors"] == [], report["errors"]
    assert report["results"] == [], json.dumps(report["results"], indent=1)
    assert report["metrics"]["_totals"]["loc"] > 500, "bandit scanned too little: %r" % report["metrics"]["_totals"]


def test_every_nosec_says_why():
    """A `# nosec` must name the check and give a reason: `# nosec B108: <why>`."""
    for path in security_scan.our_files():
        with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if "nosec" in line:
                    assert re.search(r"#\s*nosec\s+B\d{3}(,\s*B\d{3})*\s*[:-]\s*\S.{9,}", line), \
                        "%s:%d: %s" % (path, number, line.strip())


# --------------------------------------------------------------------------- run time

def make_app(directory):
    """A copy of the app with the audit wrapper and a test allowlist, and a dispatch directory beside it."""
    root = copy_app(directory)
    (root / "lookups" / "classifyport_allowlist.csv").write_text(ALLOWLIST)
    (root / "bin" / "_audit_wrapper.py").write_text(AUDIT_WRAPPER)
    return root


def event(image="cmd.exe", port="443", dest="8.8.8.8", **more):
    record = {"Image": image, "DestinationPort": port, "DestinationIp": dest, "Initiated": "true"}
    record.update(more)
    return record


CONVERSATION = [
    [event(r"C:\Windows\System32\cmd.exe"), event("powershell.exe", dest="10.1.2.3"), event("chrome.exe")],
    [event("nslookup.exe", port="53", host="DNS-01"), event(r"C:\Windows\ccmcache\2\certutil.exe", port="80"),
     event(["mshta.exe", "x.exe"], CommandLine=["a", "b $c$"])],
    [],
    [event("rundll32.exe", dest="::ffff:192.168.1.1", _raw="line 1\nline 2")],
]


def audited(app, args, chunks=CONVERSATION, prefix=(), bytecode=False, python=None):
    """Run the command from `app` under the audit wrapper; return (Result, audit log)."""
    dispatch = str(app.parent / "dispatch")
    stdin = scpv2.build_input(list(args), chunks, dispatch_dir=dispatch)
    argv = list(prefix) + [python or sys.executable] + ([] if bytecode else ["-B"]) + [
        str(app / "bin" / "_audit_wrapper.py"), str(app / "bin" / "classifyport.py"), json.dumps(WATCHED)]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(app / "bin"),
                          timeout=120, env=env)
    result = scpv2.Result(proc.returncode, proc.stdout, proc.stderr)
    result.requests = scpv2.check_conversation(stdin, result)
    marker = b"\nAUDIT "
    assert marker in proc.stderr, proc.stderr[-3000:]
    log = json.loads(proc.stderr.rsplit(marker, 1)[1].decode("utf-8"))
    return result, log


def data_files(log):
    """Files opened that are not Python's own (modules, bytecode, the interpreter's files)."""
    return [path for kind, path in log["opens"]
            if not path.endswith((".py", ".pyc", ".so", ".pth", ".zip")) and "/python3." not in path
            and "__pycache__" not in path and "/site-packages/" not in path]


def assert_harmless(app, log):
    """No network, process or file-system change; no splunkd client built; only our lookups read."""
    assert log["events"] == [], log["events"]
    assert log["created"] == [], log["created"]
    assert [path for kind, path in log["opens"] if kind == "write"] == []
    lookups_dir = os.path.realpath(str(app / "lookups"))
    read = data_files(log)
    assert all(os.path.dirname(os.path.realpath(path)) == lookups_dir for path in read), read
    assert not any("passwd" in path or path.endswith(("/x", "\\x")) for _, path in log["opens"]), log["opens"]


def test_a_full_conversation_uses_no_network_process_or_file_write(tmp_path):
    app = make_app(tmp_path)
    for args in (["mode=annotate"], []):
        result, log = audited(app, args)
        assert result.returncode == 0, result.stderr[-2000:]
        assert_harmless(app, log)
        assert data_files(log), "the lookups must have been read"
        if args:
            labelled = {r["ImageBasename"]: (r["SuspicionLabel"], r["AllowlistReason"]) for r in result.records}
            assert labelled["cmd.exe"] == ("ScriptInterpreter", "")
            assert labelled["powershell.exe"] == ("", "IT automation")
            assert labelled["certutil.exe"] == ("", "SCCM cache")
            assert labelled["nslookup.exe"] == ("", "DNS servers")
    # Information: the SDK's module-level `from ..client import Service` (search_command.py)
    # loads the REST client and its socket/ssl/http modules; nothing ever calls them (above).
    print("modules splunklib.searchcommands imports:", ", ".join(
        name for name in log["sdk_imports"] if name.split(".")[0] in ("splunklib", "socket", "ssl", "http", "urllib")))
    assert "splunklib.client" in log["sdk_imports"]


def _option_cases():
    cases = {}
    for option in OPTIONS:
        for value in PATHS:
            cases["%s=%s" % (option, value)] = (["%s=%s" % (option, value)], "refused")
    cases.update({
        "record=t": (["record=t"], "refused"),
        "record=true": (["mode=annotate", "record=true"], "refused"),
        "logging_configuration=/etc/passwd": (["logging_configuration=/etc/passwd"], "refused"),
        "logging_configuration=../../etc/passwd": (["logging_configuration=../../etc/passwd"], "refused"),
        "logging_configuration=logging.conf": (["logging_configuration=logging.conf"], "refused"),
        "show_configuration=t": (["show_configuration=t"], "refused"),
        "logging_level=/etc/passwd": (["logging_level=/etc/passwd"], "refused"),
        "positional /etc/passwd": (["/etc/passwd"], "refused"),
        "positional lookups/../x": (["mode=annotate", "lookups/../x"], "refused"),
        # Valid field names that look like paths: fields, never files.
        "image=..": (["mode=annotate", "image=.."], "field"),
        "dest=etc.passwd": (["mode=annotate", "dest=etc.passwd"], "field"),
        "port=..passwd": (["mode=annotate", "port=..passwd"], "field"),
        "profile=passwd": (["profile=passwd"], "refused"),       # a name, looked up among the profiles
    })
    return cases


OPTION_CASES = _option_cases()


@pytest.fixture(scope="module")
def option_runs(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("options"))
    chunks = [[event("cmd.exe", **{"..": "x", "etc.passwd": "8.8.8.8"})]]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(audited, app, args, chunks) for name, (args, _) in OPTION_CASES.items()}
    return app, {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(OPTION_CASES))
def test_no_option_makes_the_command_touch_a_path(option_runs, name):
    app, runs = option_runs
    args, expected = OPTION_CASES[name]
    result, log = runs[name]
    assert_harmless(app, log)
    errors = result.messages("ERROR")
    if expected == "refused":
        assert result.returncode != 0 and len(result.chunks) == 1, "refused at getinfo"
        option = args[-1].split("=", 1)[0]
        assert any(option in text for text in errors), errors
        # At most the profiles lookup, where profile= names are looked up.
        assert [os.path.basename(path) for path in data_files(log)] in ([], ["classifyport_field_profiles.csv"])
    else:
        assert result.returncode == 0 and errors == [], errors
        assert len(result.records) == 1


# --------------------------------------------------------------------------- read-only app

def _snapshot(root):
    """Every path under root with its type, size, mode and content digest."""
    found = {}
    for folder, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            found[os.path.relpath(path, str(root))] = (info.st_mode, info.st_size, digest)
    return found


@functools.lru_cache(maxsize=None)
def readonly_runner():
    """How this machine can run a command with a read-only app directory while we are root
    (root ignores file modes, so chmod alone proves nothing):

    1. "bind-mount": a private mount namespace (unshare -m) in which the app directory is
       bind-mounted onto itself read-only; writes fail with EROFS even for root.
    2. "setpriv": the command runs as nobody (setpriv) on an app copy it does not own and
       with the write bits removed, the dispatch directory being nobody's.
    3. "audit-only": neither is possible; the audit hook's record of every open for writing
       is then the only evidence (asserted in every mode anyway).
    """
    probe = tempfile.mkdtemp(prefix="classifyport-ro-")
    try:
        if shutil.which("unshare") and shutil.which("mount"):
            script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && ! touch "$1/probe" 2>/dev/null'
            proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", probe],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            if proc.returncode == 0 and not os.path.exists(os.path.join(probe, "probe")):
                return "bind-mount"
        if shutil.which("setpriv"):
            os.chmod(probe, 0o755)
            proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                                   "-c", "import sys; sys.exit(0)"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            if proc.returncode == 0:
                return "setpriv"
        return "audit-only"
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def test_the_command_runs_from_a_read_only_app_writing_nothing(tmp_path):
    """A full conversation from a read-only app directory, run as splunkd runs it (no -B): it
    works, the app is byte-for-byte unchanged (no __pycache__ either) and the only write
    attempts the audit hook sees are Python's own bytecode cache, which fails silently."""
    mode = readonly_runner()
    base = tmp_path
    if mode == "setpriv":
        base = type(tmp_path)(tempfile.mkdtemp(prefix="classifyport-ro-"))
        os.chmod(str(base), 0o755)
    try:
        app = make_app(base)
        dispatch = app.parent / "dispatch"
        prefix = ()
        if mode == "bind-mount":
            script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
            prefix = ("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(app))
        elif mode == "setpriv":
            subprocess.run(["chmod", "-R", "a-w", str(app)], check=True)
            os.chown(str(dispatch), 65534, 65534)
            prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        before = _snapshot(app)
        result, log = audited(app, ["mode=annotate"], prefix=prefix, bytecode=True)
        print("read-only app by %s; Python's bytecode cache attempts (failed or skipped): %d"
              % (mode, sum("__pycache__" in repr(item) for item in log["events"] + log["opens"])))
        assert result.returncode == 0, result.stderr[-2000:]
        assert len(result.records) == sum(len(chunk) for chunk in CONVERSATION)
        assert {r["SuspicionLabel"] for r in result.records} >= {"ScriptInterpreter", "LOLBin"}
        assert _snapshot(app) == before, "the app directory changed"
        assert list(dispatch.iterdir()) == [], "the command wrote into the dispatch directory"
        writes = [path for kind, path in log["opens"] if kind == "write"]
        assert [path for path in writes if "/__pycache__/" not in path] == [], writes
        assert log["events"] == [event for event in log["events"] if event[0] == "os.mkdir"
                                 and "__pycache__" in event[1]], log["events"]
        assert log["created"] == []
    finally:
        if base is not tmp_path:
            subprocess.run(["chmod", "-R", "u+w", str(base)])
            shutil.rmtree(str(base), ignore_errors=True)


def test_no_bytecode_is_written_into_a_writable_app(tmp_path):
    """splunkd starts the command without -B: on a writable app directory Python would cache
    bytecode in bin/__pycache__. The command should set sys.dont_write_bytecode before its
    imports so that it writes no file anywhere."""
    app = make_app(tmp_path)
    result, log = audited(app, [], bytecode=True)
    assert result.returncode == 0
    created = sorted(str(path.relative_to(app)) for path in app.rglob("__pycache__"))
    assert created == []
    assert [path for kind, path in log["opens"] if kind == "write"] == []
