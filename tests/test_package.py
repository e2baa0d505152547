"""The installable package: dist/classifyport-<version>.tar.gz as tools/build_package.py builds it.

Two builds must be byte-identical; the archive holds exactly the app's files
under one classifyport/ folder with fixed modes and owners; the version comes
from VERSION; the vendored splunklib is the pinned splunk-sdk 2.1.1, unmodified.
The expectations here are written out independently of the build script's own list.
"""
import base64
import csv
import glob
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile

import pytest

from ksconf.conf.parser import PARSECONF_STRICT_NC, parse_conf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "tools", "build_package.py")
APP = "classifyport"
SDK_VERSION = "2.1.1"
with open(os.path.join(ROOT, "VERSION"), encoding="utf-8") as _handle:
    VERSION = _handle.read().strip()

ICONS = {
    "appIcon.png": (36, 36), "appIcon_2x.png": (72, 72),
    "appIconAlt.png": (36, 36), "appIconAlt_2x.png": (72, 72),
    "appLogo.png": (160, 40), "appLogo_2x.png": (320, 80),
}
TOP_LEVEL_FILES = {"README.md", "LICENSE", "CHANGELOG.md", "app.manifest"}
# Anything under these never ships.
FORBIDDEN = re.compile(r"(^|/)(tests|tools|build|dist|local|samples|\.git|\.ci|\.venv|__pycache__)(/|$)"
                       r"|\.py[co]$|^Makefile$|^requirements-dev\.txt$|^VERSION$|^metadata/local\.meta$")


def _require_vendored_sdk():
    if not os.path.isfile(os.path.join(ROOT, "bin", "splunklib", "__init__.py")):
        pytest.fail("bin/splunklib is not vendored: run `make vendor` (make test does it first)")


def _build(outdir, root=ROOT, env=None):
    return subprocess.run([sys.executable, os.path.join(root, "tools", "build_package.py"), "--outdir", outdir],
                          cwd=root, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    _require_vendored_sdk()
    paths = []
    for name in ("first", "second"):
        outdir = str(tmp_path_factory.mktemp(name))
        result = _build(outdir)
        assert result.returncode == 0, result.stdout + result.stderr
        path = os.path.join(outdir, "%s-%s.tar.gz" % (APP, VERSION))
        assert os.path.isfile(path), "the build did not write %s" % path
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def members(builds):
    """[(TarInfo, bytes or None)] in archive order."""
    found = []
    with tarfile.open(builds[0], "r:gz") as archive:
        for info in archive.getmembers():
            data = archive.extractfile(info).read() if info.isfile() else None
            found.append((info, data))
    return found


@pytest.fixture(scope="module")
def files(members):
    """{path inside classifyport/: bytes} for every regular file."""
    return {info.name[len(APP) + 1:]: data for info, data in members if info.isfile()}


def test_two_builds_are_byte_identical(builds):
    with open(builds[0], "rb") as first, open(builds[1], "rb") as second:
        assert first.read() == second.read()


def test_gzip_header_has_no_name_or_time(builds):
    with open(builds[0], "rb") as handle:
        header = handle.read(10)
    magic, method, flags, mtime = struct.unpack("<HBBI", header[:8])
    assert (magic, method) == (0x8B1F, 8)
    assert flags & 0x08 == 0, "gzip header carries a file name"
    assert mtime == 0, "gzip header carries a time"


def test_one_top_folder_named_after_the_app(members):
    names = [info.name for info, _ in members]
    assert names[0] == APP and members[0][0].isdir()
    assert all(name == APP or name.startswith(APP + "/") for name in names), names


def test_entries_sorted_and_each_directory_listed_before_its_contents(members):
    names = [info.name for info, _ in members]
    assert names == sorted(names, key=lambda name: name.split("/"))
    assert len(names) == len(set(names))
    directories = {info.name for info, _ in members if info.isdir()}
    for name in names:
        parent = name.rsplit("/", 1)[0] if "/" in name else None
        if parent is not None:
            assert parent in directories, "%s has no directory entry for %s" % (name, parent)


def test_modes_owners_and_times(members):
    times = set()
    for info, _ in members:
        assert info.isdir() or info.isfile(), "%s is neither a file nor a directory" % info.name
        expected = 0o755 if info.isdir() or info.name == APP + "/bin/classifyport.py" else 0o644
        assert info.mode == expected, "%s has mode %o, expected %o" % (info.name, info.mode, expected)
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", ""), info.name
        times.add(info.mtime)
    assert len(times) == 1 and times.pop() > 0


def _sdk_record(dist_info_dir=None):
    """{path under splunklib/: sha256 digest (urlsafe base64, no padding)} of splunk-sdk's RECORD."""
    if dist_info_dir is None:
        try:
            distribution = importlib.metadata.distribution("splunk-sdk")
        except importlib.metadata.PackageNotFoundError:
            pytest.fail("splunk-sdk is not installed beside the tests (requirements-dev.txt pins %s)" % SDK_VERSION)
        assert distribution.version == SDK_VERSION
        text = distribution.read_text("RECORD")
    else:
        with open(os.path.join(dist_info_dir, "RECORD"), encoding="utf-8") as handle:
            text = handle.read()
    record = {}
    for path, digest, _size in csv.reader(io.StringIO(text)):
        if path.startswith("splunklib/") and digest:
            algorithm, _, value = digest.partition("=")
            assert algorithm == "sha256", digest
            record[path[len("splunklib/"):]] = value
    assert record, "splunk-sdk's RECORD lists no splunklib file"
    return record


def _digest(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _packaged_sdk(files):
    prefix = "bin/splunklib/"
    return {path[len(prefix):]: data for path, data in files.items() if path.startswith(prefix)}


def test_exact_file_list(files):
    expected = set(TOP_LEVEL_FILES)
    expected.add("bin/classifyport.py")
    expected.update("static/" + name for name in ICONS)
    expected.add("metadata/default.meta")
    for pattern in ("bin/portclassify/*.py", "default/*.conf", "lookups/*.csv", "README/*.spec",
                    "default/data/ui/nav/*.xml", "default/data/ui/views/*.xml"):
        expected.update(os.path.relpath(path, ROOT).replace(os.sep, "/")
                        for path in glob.glob(os.path.join(ROOT, pattern)))
    expected.update("bin/splunklib/" + path for path in _sdk_record())
    for required in ("bin/portclassify/__init__.py", "bin/portclassify/lookups.py", "default/app.conf",
                     "default/commands.conf", "default/searchbnf.conf", "default/transforms.conf"):
        assert required in expected
    assert set(files) == expected, {"unexpected": sorted(set(files) - expected),
                                    "missing": sorted(expected - set(files))}
    assert not [path for path in files if FORBIDDEN.search(path)]


def test_nothing_compiled_or_local(members):
    for info, _ in members:
        assert "__pycache__" not in info.name and not info.name.endswith((".pyc", ".pyo")), info.name
        assert "/local/" not in info.name + "/" and not info.name.endswith("local.meta"), info.name


def test_top_level_files_are_the_repository_copies(files):
    for path in ("README.md", "LICENSE", "CHANGELOG.md", "bin/classifyport.py", "metadata/default.meta"):
        with open(os.path.join(ROOT, path), "rb") as handle:
            assert files[path] == handle.read(), path


def test_license_is_apache_2(files):
    text = files["LICENSE"].decode("utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text


def test_version_stamped_from_version_file(files):
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    conf = parse_conf(io.StringIO(files["default/app.conf"].decode("utf-8")), profile=PARSECONF_STRICT_NC)
    assert conf["id"]["version"] == VERSION
    assert conf["launcher"]["version"] == VERSION
    manifest = json.loads(files["app.manifest"].decode("utf-8"))
    assert manifest["info"]["id"]["version"] == VERSION
    assert manifest["info"]["id"]["name"] == APP
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as handle:
        assert re.search(r"^## \[?v?%s\]?\s*$" % re.escape(VERSION), handle.read(), re.MULTILINE)


def test_stamping_changes_only_the_version_lines(files):
    with open(os.path.join(ROOT, "default", "app.conf"), encoding="utf-8") as handle:
        source = handle.read().splitlines()
    packaged = files["default/app.conf"].decode("utf-8").splitlines()
    assert len(source) == len(packaged)
    for before, after in zip(source, packaged):
        if before != after:
            assert before.startswith("version") and after == "version = %s" % VERSION, (before, after)


def _copy_app_source(destination):
    """A throwaway copy of what the build reads, to build it with another VERSION."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "__pycache__", "*.pyc", ".pytest_cache",
                                    ".hypothesis", "tests", "samples")
    shutil.copytree(ROOT, destination, ignore=ignore, symlinks=True)


def test_build_stamps_another_version_and_refuses_one_without_changelog(tmp_path):
    _require_vendored_sdk()
    source = tmp_path / "src"
    _copy_app_source(str(source))
    (source / "VERSION").write_text("9.8.7\n", encoding="utf-8")

    refused = _build(str(tmp_path / "out"), root=str(source))
    assert refused.returncode != 0
    assert "CHANGELOG.md" in refused.stderr and "9.8.7" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "out" / "classifyport-9.8.7.tar.gz").exists()

    changelog = (source / "CHANGELOG.md").read_text(encoding="utf-8")
    (source / "CHANGELOG.md").write_text(changelog.replace("# Changelog\n", "# Changelog\n\n## 9.8.7\n\n- test\n", 1),
                                         encoding="utf-8")
    built = _build(str(tmp_path / "out"), root=str(source))
    assert built.returncode == 0, built.stderr
    with tarfile.open(str(tmp_path / "out" / "classifyport-9.8.7.tar.gz"), "r:gz") as archive:
        app_conf = archive.extractfile(APP + "/default/app.conf").read().decode("utf-8")
        manifest = json.loads(archive.extractfile(APP + "/app.manifest").read().decode("utf-8"))
    conf = parse_conf(io.StringIO(app_conf), profile=PARSECONF_STRICT_NC)
    assert conf["id"]["version"] == conf["launcher"]["version"] == "9.8.7"
    assert manifest["info"]["id"]["version"] == "9.8.7"


def test_vendored_splunklib_is_the_pinned_sdk_unmodified(files):
    packaged = _packaged_sdk(files)
    record = _sdk_record()
    assert set(packaged) == set(record), {"extra": sorted(set(packaged) - set(record)),
                                          "missing": sorted(set(record) - set(packaged))}
    changed = sorted(path for path, data in packaged.items() if _digest(data) != record[path])
    assert not changed, "vendored splunklib differs from splunk-sdk %s: %s" % (SDK_VERSION, changed)
    version_info = re.search(r"__version_info__\s*=\s*\(([^)]*)\)", packaged["__init__.py"].decode("utf-8"))
    assert tuple(int(part) for part in version_info.group(1).split(",")) == tuple(map(int, SDK_VERSION.split(".")))


def test_vendored_splunklib_matches_the_hash_pinned_vendor_install(files):
    """make vendor installs the sdist by sha256 into build/sdk; its RECORD must match what shipped."""
    dist_info = os.path.join(ROOT, "build", "sdk", "splunk_sdk-%s.dist-info" % SDK_VERSION)
    if not os.path.isdir(dist_info):
        pytest.skip("build/sdk is gone (make clean); the venv's RECORD check above still ran")
    packaged = _packaged_sdk(files)
    record = _sdk_record(dist_info)
    assert {path: _digest(data) for path, data in packaged.items()} == record


def test_appinspect_trusts_every_vendored_sdk_file(files):
    """AppInspect ships sha256s of known library files; unmodified splunklib files are all among them."""
    spec = importlib.util.find_spec("splunk_appinspect")
    if spec is None:
        pytest.fail("splunk-appinspect is not installed beside the tests (requirements-dev.txt)")
    trusted_csv = os.path.join(os.path.dirname(spec.origin), "python_analyzer", "trustedlibs", "lib_files",
                               "trusted_file_hashes.csv")
    with open(trusted_csv, encoding="utf-8") as handle:
        trusted = {row["file_hash"] for row in csv.DictReader(handle)}
    untrusted = sorted(path for path, data in _packaged_sdk(files).items()
                       if hashlib.sha256(data).hexdigest() not in trusted)
    assert not untrusted, untrusted


def test_sdk_pins_agree():
    with open(os.path.join(ROOT, "requirements-dev.txt"), encoding="utf-8") as handle:
        assert re.search(r"^splunk-sdk==%s\s*$" % re.escape(SDK_VERSION), handle.read(), re.MULTILINE)
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as handle:
        makefile = handle.read()
    assert re.search(r"^SDK_VERSION := %s$" % re.escape(SDK_VERSION), makefile, re.MULTILINE)
    assert re.search(r"^SDK_SHA256 := [0-9a-f]{64}$", makefile, re.MULTILINE)


def _png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_icons_sizes(files):
    for name, size in ICONS.items():
        assert _png_size(files["static/" + name]) == size, name


def test_committed_icons_match_their_generator(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_icons.py"), "--check"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_packaged_package_is_a_valid_gzip_tar(builds):
    with gzip.open(builds[0], "rb") as handle:
        data = handle.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        assert archive.getnames()
