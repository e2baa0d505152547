#!/usr/bin/env python3
"""Static security scan of the Python code classifyport ships.

    python3 tools/security_scan.py          # our code; exit 1 listing each finding
    python3 tools/security_scan.py --sdk    # and, for information, what the vendored splunklib imports

"Our code" is every shipped Python file outside the vendored SDK: tools/build_package.py's
file list, less bin/splunklib/ (today bin/classifyport.py and bin/portclassify/*.py). Each
is parsed with `ast` (never imported or run) and must not:

* import a module that reaches the network, starts or signals a process, deserialises
  (pickle, marshal, shelve), imports by name at run time (importlib, runpy, __import__),
  loads native code (ctypes), or writes files (tempfile, shutil); nor splunklib's REST
  client (splunklib.client, splunklib.binding);
* import anything not on REVIEWED_IMPORTS (a new import is a review decision, not an accident);
* call eval, exec, compile, __import__, breakpoint or input (stdin carries the protocol);
* call os.system, os.popen, os.spawn*, os.exec*, os.fork*, os.posix_spawn*, os.startfile,
  os.kill, or any os function that writes, removes, renames or re-permissions a path, or
  os.open/os.chdir/os.putenv; reach them through getattr(); or name `service` (the only way
  a splunklib search command builds a splunklib.client.Service);
* open a file other than for reading: open() and io.open() need a constant mode without
  w, a, x or +; pathlib's write_text/write_bytes/touch are refused. The one exception is
  os.devnull, named as such: opening it to write (os.open(os.devnull, os.O_WRONLY), to
  silence stdout once splunkd has closed the pipe) writes no file.

Standard library only; runs on Python 3.9 and later.
"""
import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SDK_PREFIX = "bin/splunklib/"

# module (or dotted prefix) -> why it may not be imported by our code
FORBIDDEN_MODULES = {
    "socket": "network", "ssl": "network", "http": "network", "urllib": "network", "urllib2": "network",
    "urllib3": "network", "httplib": "network", "requests": "network", "ftplib": "network",
    "smtplib": "network", "poplib": "network", "imaplib": "network", "nntplib": "network",
    "telnetlib": "network", "xmlrpc": "network", "socketserver": "network", "asyncio": "network",
    "webbrowser": "network", "splunklib.client": "network (splunkd REST client)",
    "splunklib.binding": "network (splunkd REST binding)", "splunklib.results": "REST result reader",
    "splunklib.modularinput": "not a search command",
    "subprocess": "process", "multiprocessing": "process", "concurrent": "process", "pty": "process",
    "pipes": "process", "popen2": "process", "commands": "process", "signal": "process",
    "pickle": "deserialisation", "cPickle": "deserialisation", "_pickle": "deserialisation",
    "marshal": "deserialisation", "shelve": "deserialisation", "dill": "deserialisation",
    "cloudpickle": "deserialisation", "copyreg": "deserialisation",
    "importlib": "dynamic import", "imp": "dynamic import", "runpy": "dynamic import",
    "pkgutil": "dynamic import", "zipimport": "dynamic import", "code": "code evaluation",
    "codeop": "code evaluation",
    "ctypes": "native code", "_ctypes": "native code", "cffi": "native code", "mmap": "native memory",
    "tempfile": "file writes", "shutil": "file writes", "pathlib": "file writes", "gzip": "file writes",
    "zipfile": "file writes", "tarfile": "file writes", "sqlite3": "file writes", "dbm": "file writes",
}

# Every module our code may import; anything else is a finding until reviewed and added here.
# (Pure computation or reading; adding one here is the review.)
REVIEWED_IMPORTS = {
    "binascii", "bisect", "codecs", "collections", "csv", "datetime", "errno", "fnmatch", "functools", "gc", "io",
    "ipaddress", "itertools", "json", "math", "operator", "os", "re", "stat", "string", "struct", "sys",
    "time", "splunklib.searchcommands", "portclassify",
}

FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__", "breakpoint", "input", "execfile", "reload"}
FORBIDDEN_OS = {
    "system", "popen", "startfile", "kill", "killpg", "fork", "forkpty", "posix_spawn", "posix_spawnp",
    "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
    "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "mkdir", "makedirs",
    "chmod", "lchmod", "fchmod", "chown", "lchown", "fchown", "link", "symlink", "truncate", "ftruncate",
    "mkfifo", "mknod", "open", "write", "chdir", "fchdir", "chroot", "putenv", "unsetenv", "setuid",
    "setgid", "utime", "memfd_create", "pipe",
}
FORBIDDEN_ATTRIBUTES = {"write_text", "write_bytes", "touch", "service", "_service"}
WRITE_MODE_CHARS = set("wax+")


def our_files(root=ROOT):
    """Repository-relative paths of the shipped Python files that are ours (not the vendored SDK)."""
    sys.path.insert(0, os.path.join(root, "tools"))
    try:
        import build_package
    finally:
        sys.path.pop(0)
    return [path for path in build_package.package_files(root)
            if path.endswith(".py") and not path.startswith(SDK_PREFIX)]


def _module_of(node, package):
    """Absolute module name an ImportFrom refers to (relative imports resolved in `package`)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[:len(parts) - node.level + 1] if node.level > 1 else parts
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(tree, package="", names=True):
    """[(line, dotted module name)] of every import in a parsed file; with `names`,
    `from a import b` also gives a.b (b may be a submodule)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _module_of(node, package)
            found.append((node.lineno, module))
            if names:
                found.extend((node.lineno, "%s.%s" % (module, alias.name)) for alias in node.names
                             if alias.name != "*")
    return found


def _forbidden_module(name):
    parts = name.split(".")
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        if prefix in FORBIDDEN_MODULES:
            return prefix, FORBIDDEN_MODULES[prefix]
    return None


def _reviewed(name):
    parts = name.split(".")
    return any(".".join(parts[:size]) in REVIEWED_IMPORTS for size in range(1, len(parts) + 1))


def _constant_text(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _is_devnull(node):
    return (isinstance(node, ast.Attribute) and node.attr == "devnull" and isinstance(node.value, ast.Name)
            and node.value.id == "os")


def _open_mode(call):
    """The mode argument of an open() call: its text, "r" when absent, None when not a constant."""
    if len(call.args) >= 2:
        return _constant_text(call.args[1])
    for keyword in call.keywords:
        if keyword.arg == "mode":
            return _constant_text(keyword.value)
        if keyword.arg is None:
            return None
    return "r"


def scan_source(source, filename, package=""):
    """[(filename, line, problem)] for one file's source text."""
    tree = ast.parse(source, filename)
    findings = []

    def add(node, problem):
        findings.append((filename, getattr(node, "lineno", 0), problem))

    imported = imported_modules(tree, package)
    for line, name in imported:
        bad = _forbidden_module(name)
        if bad:
            findings.append((filename, line, "imports %s (%s: %s)" % (name, bad[0], bad[1])))
        elif not _reviewed(name) and not name.startswith(package + ".") and name != package:
            findings.append((filename, line, "imports %s, which is not on REVIEWED_IMPORTS" % name))
    os_aliases = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _module_of(node, package) == "os":
            for alias in node.names:
                if alias.name in FORBIDDEN_OS:
                    add(node, "imports os.%s" % alias.name)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "os" and alias.asname:
                    os_aliases.add(alias.asname)
    devnull_calls = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _is_devnull(node.args[0]):
            devnull_calls.add(id(node.func))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_BUILTINS:
            add(node, "uses %s()" % node.id)
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in os_aliases and node.attr in FORBIDDEN_OS:
                if not (node.attr == "open" and id(node) in devnull_calls):
                    add(node, "uses os.%s" % node.attr)
            elif node.attr in FORBIDDEN_ATTRIBUTES:
                add(node, "uses .%s" % node.attr)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) >= 2:
                attr = _constant_text(node.args[1])
                if attr is None:
                    add(node, "%s() with a computed attribute name" % name)
                elif attr in FORBIDDEN_OS or attr in FORBIDDEN_BUILTINS or attr in FORBIDDEN_ATTRIBUTES:
                    add(node, "%s(..., %r)" % (name, attr))
            is_open = (isinstance(func, ast.Name) and func.id == "open") or (
                isinstance(func, ast.Attribute) and func.attr == "open" and isinstance(func.value, ast.Name)
                and func.value.id in ("io", "codecs"))
            if is_open and not (node.args and _is_devnull(node.args[0])):
                mode = _open_mode(node)
                if mode is None:
                    add(node, "open() with a mode that is not a constant")
                elif WRITE_MODE_CHARS & set(mode):
                    add(node, "open() for writing (mode %r)" % mode)
    return findings


def scan(root=ROOT, files=None):
    """[(path, line, problem)] over our shipped files."""
    findings = []
    for relpath in files if files is not None else our_files(root):
        with open(os.path.join(root, relpath), encoding="utf-8") as handle:
            source = handle.read()
        package = ""
        if relpath.startswith("bin/") and relpath.count("/") >= 2:
            package = relpath[len("bin/"):].rsplit("/", 1)[0].replace("/", ".")
        findings.extend(scan_source(source, relpath, package))
    return findings


def sdk_inventory(root=ROOT):
    """{splunklib module path: sorted modules it imports that FORBIDDEN_MODULES lists} (information)."""
    inventory = {}
    sdk = os.path.join(root, "bin", "splunklib")
    for folder, _, names in os.walk(sdk):
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            relpath = os.path.relpath(path, root).replace(os.sep, "/")
            package = os.path.relpath(folder, os.path.join(root, "bin")).replace(os.sep, ".")
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read(), relpath)
            modules = {name for _, name in imported_modules(tree, package, names=False)}
            modules |= {name for _, name in imported_modules(tree, package) if name.startswith("splunklib.")
                        and _forbidden_module(name) and _forbidden_module(name)[0] == name}
            # Imports within a subpackage (modularinput's own modules) are not of interest.
            own = None if package == "splunklib" else package + "."
            risky = sorted(name for name in modules
                           if _forbidden_module(name) and (own is None or not name.startswith(own)))
            if risky:
                inventory[relpath] = risky
    return inventory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdk", action="store_true", help="also list what the vendored splunklib imports")
    args = parser.parse_args(argv)
    files = our_files()
    findings = scan(files=files)
    print("scanned %d files: %s" % (len(files), ", ".join(files)))
    for path, line, problem in findings:
        print("%s:%d: %s" % (path, line, problem))
    if args.sdk:
        print("\nvendored splunklib imports (information; see README, Security review):")
        for path, modules in sorted(sdk_inventory().items()):
            print("  %s: %s" % (path, ", ".join(modules)))
    print("%d finding(s)" % len(findings))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
