#!/usr/bin/env python3
"""Build dist/classifyport-<version>.tar.gz, the installable Splunk app, reproducibly.

    python3 tools/build_package.py [--outdir DIR] [--list]

The version comes from VERSION alone: the build stamps it into the packaged
default/app.conf ([id] and [launcher] version) and app.manifest (info.id.version)
and refuses to build when CHANGELOG.md has no "## <version>" section.

What ships is the explicit list in PACKAGE_FILES below, nothing else: no tests,
tools, Makefile, .git, .ci, local/, build/, dist/, __pycache__ or *.pyc. The
archive has one top folder, classifyport/; entries are sorted, owned by 0:0 with
empty user and group names, 644 (755 for directories and the command script),
with one fixed mtime, and the gzip header carries no file name or time, so two
builds of the same tree are byte-identical. Standard library only.
"""
import argparse
import fnmatch
import glob
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_ID = "classifyport"

# The one list of what ships. (pattern, required): a pattern is a path relative
# to the repository root or a glob ("**" for the vendored SDK tree); a required
# pattern that matches nothing stops the build.
PACKAGE_FILES = (
    ("app.manifest", True),
    ("README.md", True),
    ("LICENSE", True),
    ("CHANGELOG.md", True),
    ("bin/classifyport.py", True),
    ("bin/portclassify/*.py", True),
    ("bin/splunklib/**/*.py", True),
    ("default/*.conf", True),
    ("metadata/default.meta", True),
    ("lookups/*.csv", True),
    ("static/*.png", True),
    ("README/*.conf.spec", False),
    ("default/data/ui/nav/*.xml", True),
    ("default/data/ui/views/*.xml", True),
)
# Never shipped, whatever a pattern above matches.
NEVER = ("*/__pycache__/*", "*.pyc", "*.pyo", "local/*", "*/local/*", "metadata/local.meta")
# Directories 755; files 644 except these.
EXECUTABLE = ("bin/classifyport.py",)
VENDOR_HINT = "bin/splunklib is missing: run `make vendor` (it copies splunk-sdk into bin/)"

# A fixed timestamp for every entry (2024-01-01T00:00:00Z); SOURCE_DATE_EPOCH overrides it.
DEFAULT_MTIME = 1704067200


class BuildError(Exception):
    pass


def read_version(root=ROOT):
    with open(os.path.join(root, "VERSION"), encoding="utf-8") as handle:
        version = handle.read().strip()
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise BuildError("VERSION must hold one version like 1.2.3, not %r" % version)
    return version


def check_changelog(version, root=ROOT):
    with open(os.path.join(root, "CHANGELOG.md"), encoding="utf-8") as handle:
        text = handle.read()
    heading = re.compile(r"^##\s+\[?v?%s\]?(\s|$)" % re.escape(version), re.MULTILINE)
    if not heading.search(text):
        raise BuildError("CHANGELOG.md has no section for version %s (add a line \"## %s\" with its notes)"
                         % (version, version))


def package_files(root=ROOT):
    """Sorted repository-relative paths of every file that ships."""
    found = set()
    for pattern, required in PACKAGE_FILES:
        matches = [os.path.relpath(path, root).replace(os.sep, "/")
                   for path in glob.glob(os.path.join(root, pattern), recursive=True)
                   if os.path.isfile(path)]
        matches = [path for path in matches if not any(fnmatch.fnmatch(path, bad) for bad in NEVER)]
        if required and not matches:
            if pattern.startswith("bin/splunklib"):
                raise BuildError(VENDOR_HINT)
            raise BuildError("nothing matches %s, which the package needs" % pattern)
        found.update(matches)
    return sorted(found)


def stamp_app_conf(text, version):
    """Set `version` in the [id] and [launcher] stanzas, leaving every other line as it is."""
    stanza, stamped, lines = None, set(), []
    for line in text.splitlines(keepends=True):
        header = re.match(r"\s*\[([^\]]*)\]\s*$", line)
        if header:
            stanza = header.group(1).strip()
        elif stanza in ("id", "launcher") and re.match(r"\s*version\s*=", line):
            ending = "\n" if line.endswith("\n") else ""
            line = "version = %s%s" % (version, ending)
            stamped.add(stanza)
        lines.append(line)
    missing = {"id", "launcher"} - stamped
    if missing:
        raise BuildError("default/app.conf has no version line in [%s]" % "], [".join(sorted(missing)))
    return "".join(lines)


def stamp_manifest(text, version):
    """Set info.id.version in app.manifest, keeping the file's own layout."""
    original = json.loads(text)
    pattern = re.compile(r'("version"\s*:\s*)"[^"]*"')
    if len(pattern.findall(text)) != 1:
        raise BuildError('app.manifest must have exactly one "version" key (info.id.version)')
    stamped = pattern.sub(lambda match: match.group(1) + json.dumps(version), text)
    result = json.loads(stamped)
    original["info"]["id"]["version"] = version
    if result != original:
        raise BuildError("app.manifest: the version key is not info.id.version")
    return stamped


def file_content(relpath, version, root=ROOT):
    with open(os.path.join(root, relpath), "rb") as handle:
        data = handle.read()
    if relpath == "default/app.conf":
        data = stamp_app_conf(data.decode("utf-8"), version).encode("utf-8")
    elif relpath == "app.manifest":
        data = stamp_manifest(data.decode("utf-8"), version).encode("utf-8")
    return data


def _info(name, mtime, mode, size=0, directory=False):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build(outdir, root=ROOT):
    """Write the package into outdir and return its path."""
    version = read_version(root)
    check_changelog(version, root)
    files = package_files(root)
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_MTIME))

    directories = {APP_ID}
    for relpath in files:
        parts = relpath.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directories.add("/".join([APP_ID] + parts[:depth]))
    entries = [(name, None) for name in directories] + [(APP_ID + "/" + relpath, relpath) for relpath in files]
    entries.sort(key=lambda entry: entry[0].split("/"))

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, relpath in entries:
            if relpath is None:
                archive.addfile(_info(name, mtime, 0o755, directory=True))
                continue
            data = file_content(relpath, version, root)
            mode = 0o755 if relpath in EXECUTABLE else 0o644
            archive.addfile(_info(name, mtime, mode, size=len(data)), io.BytesIO(data))

    compressed = io.BytesIO()
    # filename="" and mtime=0 leave the file name and time out of the gzip header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=9, mtime=0) as gz:
        gz.write(tar_bytes.getvalue())

    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "%s-%s.tar.gz" % (APP_ID, version))
    partial = path + ".partial"
    with open(partial, "wb") as handle:
        handle.write(compressed.getvalue())
    os.replace(partial, path)
    return path, len(files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", default=os.path.join(ROOT, "dist"), help="where to write (default dist/)")
    parser.add_argument("--list", action="store_true", help="print the files that would ship and stop")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for relpath in package_files():
                print(relpath)
            return 0
        path, count = build(args.outdir)
    except (BuildError, OSError, ValueError) as error:
        print("build_package: %s" % error, file=sys.stderr)
        return 1
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    print("built %s: %d files, %d bytes, sha256 %s" % (os.path.relpath(path), count, os.path.getsize(path), digest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
