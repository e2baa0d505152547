"""Hostile and hand-edited lookups (issue 5): what the Lookup Editor, Excel, text editors and
accidents do to the CSVs, for every lookup file.

Valid variants (BOM, CRLF, padding, quoting, blank lines, extra columns, upper case, a
100,000-row allowlist) must load to exactly what the pristine files load to; invalid ones
stop the search naming the file, the row and the problem. Most cases use the pure loaders;
a few go through the command over SCP v2 from a copy of the app. The allowlist's index is
checked against a plain row-by-row matcher with hypothesis.

Existing coverage not repeated here: tests/test_portclassify.py (one Excel-style processes
file, one bad row per loader) and tests/test_options_and_errors.py (bad rows through the
command, empty and missing files, expiry dates on every Python).
"""
import csv
import datetime
import fnmatch
import functools
import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scpv2
from conftest import ROOT, make_app, splunk_interpreters
from portclassify import allowlist as allowlist_module, bounded
from portclassify import classifier, csvfile, lookups
from portclassify.allowlist import Allowlist, AllowRule, PatternProblem
from portclassify.csvfile import LookupProblem
from portclassify.networks import ip_number, parse_ip

TODAY = datetime.date(2026, 1, 1)
TRACEBACK = re.compile(r'Traceback|File "|\.py", line')
ALL_LOOKUPS = (lookups.PROCESSES, lookups.PORTS, lookups.INTERNAL_NETWORKS, lookups.ALLOWLIST,
               lookups.FIELD_PROFILES, lookups.TECHNIQUES, lookups.RISK)
# Each lookup's required columns, as its loader asks for them.
REQUIRED = {
    lookups.PROCESSES: ("process", "category"),
    lookups.PORTS: ("port",),
    lookups.INTERNAL_NETWORKS: ("cidr",),
    lookups.ALLOWLIST: ("process", "dest_cidr", "port", "host", "user", "reason", "expires"),
    lookups.FIELD_PROFILES: ("profile", "role", "priority", "field", "inbound_value"),
    lookups.TECHNIQUES: ("match", "value", "technique_id"),
    lookups.RISK: ("label", "destination", "risk_score"),
}
# Columns whose values are case-sensitive: Splunk field names, and text the command outputs.
KEEP_CASE = {lookups.FIELD_PROFILES: ("field",), lookups.ALLOWLIST: ("reason",)}

# The README's rows for the original search's known false positives, plus globs of each kind.
ALLOWLIST_TEXT = """process,dest_cidr,port,host,user,reason,expires
powershell.exe,10.20.0.0/16,443,,*\\svc_automation,IT automation PowerShell to internal REST APIs,
certutil.exe,10.30.5.0/24,80,,,Software distribution point (certutil downloads),
bitsadmin.exe,10.30.5.0/24,80-443,,,Software distribution point (BITS jobs),
msbuild.exe,10.40.1.10/32,443,BUILD-*,,Build servers fetching from the artifact repository,
csc.exe,,443,BUILD-*,,Build servers compiling against NuGet,
cscript.exe,127.0.0.1/32,80,,,Monitoring scripts querying a local management interface,
wscript.exe,127.0.0.1/32,80,,,Monitoring scripts querying a local management interface,2099-06-30
*\\ccmcache\\*,,,,,SCCM client cache,
,,53,DNS-*,,"DNS servers, any process",
mshta.exe,,,,CORP\\svc_?eploy,Deployment account,2020-01-01
"""


# --------------------------------------------------------------------------- helpers

def app_with_lookups(tmp_path, name="app"):
    """A directory holding a copy of the shipped lookups/ (enough for the pure loaders)."""
    root = tmp_path / name
    shutil.copytree(os.path.join(ROOT, "lookups"), str(root / "lookups"))
    write(root, lookups.ALLOWLIST, ALLOWLIST_TEXT)
    return root


def write(root, filename, data):
    path = root / "lookups" / filename
    if path.is_symlink() or path.is_file():
        path.unlink()
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def read_text(root, filename):
    return (root / "lookups" / filename).read_bytes().decode("utf-8-sig")


def load_everything(root):
    """Every loader's result, as plain comparable data."""
    rules, expired = lookups.load_allowlist(str(root), TODAY)
    techniques = lookups.load_techniques(str(root))
    return {
        lookups.PROCESSES: lookups.load_processes(str(root)),
        lookups.PORTS: lookups.load_ports(str(root)).ranges,
        lookups.INTERNAL_NETWORKS: lookups.load_internal_networks(str(root)).networks,
        # Row numbers move when blank lines are added; the rules' order and content may not.
        lookups.ALLOWLIST: ([(r.process, r.network, r.ports, r.host, r.user, r.reason) for r in rules], len(expired)),
        lookups.FIELD_PROFILES: lookups.load_profiles(str(root)),
        lookups.TECHNIQUES: (techniques.by_label, techniques.by_process, techniques.by_port, techniques.aliases),
        lookups.RISK: lookups.load_risk(str(root)),
    }


def rows_of(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def to_csv(rows, line_end="\n", quote_all=False):
    out = io.StringIO()
    csv.writer(out, lineterminator=line_end, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL).writerows(rows)
    return out.getvalue()


def _upper(filename, rows):
    keep = [index for index, name in enumerate(rows[0]) if name.strip().lower() in KEEP_CASE.get(filename, ())]
    return [rows[0]] + [[cell if index in keep else cell.upper() for index, cell in enumerate(row)] for row in rows[1:]]


# Each variant: (filename, text of the pristine file) -> bytes of the edited file.
VARIANTS = {
    "bom": lambda name, text: b"\xef\xbb\xbf" + text.encode("utf-8"),
    "crlf": lambda name, text: to_csv(rows_of(text), "\r\n").encode("utf-8"),
    "padded": lambda name, text: to_csv([[" %s  " % cell for cell in row] for row in rows_of(text)]).encode("utf-8"),
    "quoted": lambda name, text: to_csv(rows_of(text), quote_all=True).encode("utf-8"),
    "blank-lines": lambda name, text: ("\n\n" + text.replace("\n", "\n\n", 3) + ",,,\n  \n").encode("utf-8"),
    "extra-columns": lambda name, text: to_csv([["Notes"] + row + ["owner", ""] for row in [rows_of(text)[0]]]
                                               + [["note, with comma"] + row + ["me", ""] for row in rows_of(text)[1:]]
                                               ).encode("utf-8"),
    "upper-case": lambda name, text: to_csv([[cell.upper() for cell in rows_of(text)[0]]]
                                            + _upper(name, rows_of(text))[1:]).encode("utf-8"),
    "lookup-editor": lambda name, text: to_csv([[cell.upper() for cell in rows_of(text)[0]]]
                                               + _upper(name, rows_of(text))[1:], "\r\n", quote_all=True)
    .encode("utf-8"),
    "excel": lambda name, text: b"\xef\xbb\xbf" + to_csv(
        [[" %s " % cell.upper() for cell in rows_of(text)[0]] + ["Extra"]]
        + [[" %s" % cell for cell in row] + [""] for row in _upper(name, rows_of(text))[1:]]
        + [[""] * (len(rows_of(text)[0]) + 1)], "\r\n").encode("utf-8"),
    "no-final-newline": lambda name, text: text.rstrip("\n").encode("utf-8"),
}


# --------------------------------------------------------------------------- valid variants

@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return load_everything(app_with_lookups(tmp_path_factory.mktemp("pristine")))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("filename", ALL_LOOKUPS)
def test_hand_edited_variant_loads_like_the_original(tmp_path, pristine, filename, variant):
    root = app_with_lookups(tmp_path)
    write(root, filename, VARIANTS[variant](filename, read_text(root, filename)))
    assert load_everything(root)[filename] == pristine[filename]


def test_every_lookup_edited_at_once_changes_no_output_of_the_command(tmp_path):
    """Through the command: every lookup saved as Excel and as the Lookup Editor would, and the
    sample events come back with the same output fields as from the pristine app."""
    events = [json.loads(line) for line in open(os.path.join(ROOT, "samples", "sysmon_eid3.jsonl"), encoding="utf-8")]
    events += [dict(events[0], Image=r"C:\Windows\ccmcache\1\PowerShell.EXE"),
               dict(events[0], Image="certutil.exe", DestinationIp="10.30.5.9", DestinationPort="80"),
               dict(events[0], Image="nslookup.exe", DestinationPort="53", host="dns-01")]
    chunks = [events[:len(events) // 2], events[len(events) // 2:]]
    apps = {}
    for variant in ("pristine", "excel", "lookup-editor"):
        app = make_app(tmp_path / variant)
        write(app, lookups.ALLOWLIST, ALLOWLIST_TEXT)
        if variant != "pristine":
            for filename in ALL_LOOKUPS:
                write(app, filename, VARIANTS[variant](filename, read_text(app, filename)))
        apps[variant] = app
    results = run_parallel({variant: functools.partial(run_app, app, ["mode=annotate"], chunks)
                            for variant, app in apps.items()})
    expected = results["pristine"]
    assert expected.returncode == 0 and expected.messages("ERROR") == []
    assert {r["AllowlistReason"] for r in expected.records} > {""}, "the allowlist must take part"
    for variant in ("excel", "lookup-editor"):
        assert results[variant].returncode == 0, results[variant].messages()
        assert results[variant].records == expected.records, variant
        assert results[variant].messages() == expected.messages()


def test_header_only_files(tmp_path):
    """A header and no row: valid for the lists a site may leave empty, refused for the others."""
    outcomes = {}
    for filename in ALL_LOOKUPS:
        root = app_with_lookups(tmp_path, filename)
        header = rows_of(read_text(root, filename))[0]
        write(root, filename, ",".join(header) + "\r\n\r\n")
        try:
            load_everything(root)
            outcomes[filename] = "ok"
        except LookupProblem as problem:
            assert problem.filename == filename
            outcomes[filename] = str(problem)
    assert outcomes[lookups.ALLOWLIST] == outcomes[lookups.INTERNAL_NETWORKS] == outcomes[lookups.TECHNIQUES] == "ok"
    assert "lists no process" in outcomes[lookups.PROCESSES]
    assert "lists no port" in outcomes[lookups.PORTS]
    assert "defines no profile" in outcomes[lookups.FIELD_PROFILES]
    assert "no risk_score" in outcomes[lookups.RISK]


def test_formula_looking_cells_are_literal_text(tmp_path):
    """Nothing evaluates a cell. A formula-looking process name that is a valid file name is just
    that name; in free-text columns (reason, source, description) any formula is kept verbatim."""
    root = app_with_lookups(tmp_path)
    text = read_text(root, lookups.PROCESSES)
    write(root, lookups.PROCESSES, text + '=calc.exe,LOLBin,"=cmd|\' /C calc\'!A0"\n@sum.exe,LOLBin,+1\n')
    names = lookups.load_processes(str(root))
    assert names["=calc.exe"] == names["@sum.exe"] == lookups.CATEGORIES.index("LOLBin")
    write(root, lookups.ALLOWLIST, "process,dest_cidr,port,host,user,reason,expires\n"
                                   "=calc.exe,,,,,\"=cmd|' /C calc'!A0\",\n-x.exe,,,=HOST*,,@SUM(1+1),\n")
    rules, _ = lookups.load_allowlist(str(root), TODAY)
    assert [(r.process, r.host, r.reason) for r in rules] == [
        ("=calc.exe", "", "=cmd|' /C calc'!A0"), ("-x.exe", "=host*", "@SUM(1+1)")]


def test_long_lists_load(tmp_path):
    """A site-sized processes list (100,000 names, upper case, CRLF) and a 10,000-row ports list."""
    root = app_with_lookups(tmp_path)
    write(root, lookups.PROCESSES, "PROCESS,CATEGORY\r\n" + "".join("P%06d.EXE,LOLBIN\r\n" % n for n in range(100000)))
    write(root, lookups.PORTS, "port,service\n" + "".join("%d,s\n" % (1024 + n) for n in range(10000)))
    names = lookups.load_processes(str(root))
    assert len(names) == 100000 and names["p099999.exe"] == lookups.CATEGORIES.index("LOLBin")
    ports = lookups.load_ports(str(root))
    assert 11023 in ports and 11024 not in ports and 1023 not in ports


# --------------------------------------------------------------------------- invalid files

def _zip_bytes():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


def _binary_bytes():
    return bytes((index * 37 + 11) % 256 for index in range(4096))


# (id, filename, edit(text of the pristine file) -> new contents, row or None, words the message must hold)
INVALID = [
    ("cp1252-e-acute", lookups.PROCESSES, lambda t: t.encode("utf-8") + "café.exe,LOLBin,site\r\n".encode("cp1252"),
     "last", ["not UTF-8", "0xE9", "process", "CSV UTF-8"]),
    ("cp1252-in-reason", lookups.ALLOWLIST, lambda t: t.encode("utf-8") + "cmd.exe,,,,,Jos\xe9's box,\n".encode("cp1252"),
     "last", ["not UTF-8", "0xE9", "reason"]),
    ("cp1252-in-header", lookups.PORTS, lambda t: "port,servic\xe9\n80,http\n".encode("cp1252"), 1,
     ["not UTF-8", "0xE9"]),
    ("nul-byte", lookups.PORTS, lambda t: t.encode("utf-8") + b"8\x0080,http\n", "last", ["NUL", "port"]),
    ("nul-in-first-row", lookups.INTERNAL_NETWORKS, lambda t: b"cidr,description\x00\n10.0.0.0/8,x\n", 1, ["NUL"]),
    ("utf-16", lookups.PROCESSES, lambda t: t.encode("utf-16"), None, ["UTF-16", "CSV UTF-8"]),
    ("xlsx-renamed", lookups.ALLOWLIST, lambda t: _zip_bytes(), None, ["ZIP", "xlsx", "CSV UTF-8"]),
    ("xls-renamed", lookups.PORTS, lambda t: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, None, [".xls"]),
    ("binary", lookups.RISK, lambda t: _binary_bytes(), 1, ["byte"]),
    ("unquoted-comma", lookups.ALLOWLIST, lambda t: t + "cmd.exe,,,,,DNS, from any exe,2099-01-01\n", "last",
     ["8 cells", "7 columns", "double quotes"]),
    # With the expiry empty the shifted cell lands in expires (a trailing empty cell is allowed).
    ("unquoted-comma-shifted", lookups.ALLOWLIST, lambda t: t + "cmd.exe,,,,,DNS, from any exe,\n", "last",
     ["expires", "from any exe"]),
    # The unclosed quote swallows the rest of the file into its row, the last one.
    ("unclosed-quote", lookups.PROCESSES, lambda t: t + '"oops.exe,LOLBin,site\r\nmore.exe,LOLBin,site\r\n', "last",
     ["double quote", "never closed"]),
    ("column-named-twice", lookups.PORTS, lambda t: "port,service,PORT\n80,http,443\n", 1, ["port", "twice"]),
    ("glob-in-processes", lookups.PROCESSES, lambda t: t + "*.exe,LOLBin,site\n", "last", ["'*.exe'", "no * or ? pattern"]),
    ("formula-in-processes", lookups.PROCESSES, lambda t: t + "\"=cmd|' /C calc'!A0\",LOLBin,site\n", "last",
     ["=cmd|' /C calc'!A0", "must be a file name"]),
    ("formula-pipe-in-processes", lookups.PROCESSES, lambda t: t + "\"=cmd|'calc'!A0\",LOLBin,site\n", "last",
     ["=cmd|'calc'!A0", "not a file name", "'|'"]),
    ("tab-in-process", lookups.PROCESSES, lambda t: t + "\"cm\td.exe\",LOLBin,site\n", "last", ["not a file name"]),
    ("overlong-process", lookups.PROCESSES, lambda t: t + "%s.exe,LOLBin,site\n" % ("a" * 300), "last",
     ["255"]),
    ("same-process-twice-same-category", lookups.PROCESSES, lambda t: t + "CMD.exe,ScriptInterpreter,site\n", "last",
     ["listed twice"]),
    ("reversed-glob-range", lookups.ALLOWLIST, lambda t: t + "[z-a]*.exe,,,,,typo,\n", "last", ["[z-a]", "z-a"]),
    ("overlong-glob", lookups.ALLOWLIST, lambda t: t + ",,,%s*,,huge,\n" % ("h" * 3000), "last", ["3001", "2048"]),
    ("allowlist-port-word", lookups.ALLOWLIST, lambda t: t + "cmd.exe,,eighty,,,x,\n", "last", ["eighty"]),
    ("allowlist-cidr-33", lookups.ALLOWLIST, lambda t: t + "cmd.exe,10.0.0.0/33,,,,x,\n", "last", ["10.0.0.0/33"]),
    ("allowlist-excel-date", lookups.ALLOWLIST, lambda t: t + "cmd.exe,,,,,x,12/31/2099\n", "last",
     ["12/31/2099", "YYYY-MM-DD"]),
    ("allowlist-impossible-date", lookups.ALLOWLIST, lambda t: t + "cmd.exe,,,,,x,2099-02-30\n", "last",
     ["2099-02-30"]),
    ("ports-range-word", lookups.PORTS, lambda t: t + "80-eighty,http\n", "last", ["80-eighty"]),
    ("technique-port-word", lookups.TECHNIQUES, lambda t: t + "port,eighty,T1071,x\n", "last", ["eighty"]),
    ("internal-cidr-33", lookups.INTERNAL_NETWORKS, lambda t: t + "192.168.0.0/33,typo\n", "last", ["192.168.0.0/33"]),
    ("profile-priority-word", lookups.FIELD_PROFILES, lambda t: t + "sysmon,user,first,User,\n", "last", ["first"]),
    ("risk-label-typo", lookups.RISK, lambda t: t + "LOLBins,external,10\n", "last", ["LOLBins"]),
]


def _data_rows(data):
    """Number of CSV records in `data` (the header is record 1), ignoring a trailing line end."""
    return len(rows_of(data.decode("utf-8", "replace").replace("\x00", "")))


@pytest.mark.parametrize("case", INVALID, ids=[case[0] for case in INVALID])
def test_invalid_lookup_names_file_row_and_problem(tmp_path, case):
    _, filename, edit, row, words = case
    root = app_with_lookups(tmp_path)
    data = edit(read_text(root, filename))
    data = data.encode("utf-8") if isinstance(data, str) else data
    write(root, filename, data)
    if row == "last":
        row = _data_rows(data)
    with pytest.raises(LookupProblem) as caught:
        load_everything(root)
    problem = caught.value
    assert (problem.filename, problem.row) == (filename, row), str(problem)
    text = str(problem)
    assert text.startswith(filename + (" row %d: " % row if row else ": ")), text
    for word in words:
        assert word in text, (word, text)
    assert not re.search("[\udc00-\udcff\x00]", text), "the message itself must be clean text"


@pytest.mark.parametrize("filename", ALL_LOOKUPS)
def test_every_missing_required_column_is_named(tmp_path, filename):
    for column in REQUIRED[filename]:
        root = app_with_lookups(tmp_path, "%s-%s" % (filename, column))
        rows = rows_of(read_text(root, filename))
        index = [cell.strip().lower() for cell in rows[0]].index(column)
        write(root, filename, to_csv([row[:index] + row[index + 1:] for row in rows]))
        with pytest.raises(LookupProblem) as caught:
            load_everything(root)
        assert (caught.value.filename, caught.value.row) == (filename, 1)
        assert "missing column %s" % column in str(caught.value)


def test_a_one_gigabyte_file_is_refused_without_being_read(tmp_path):
    root = app_with_lookups(tmp_path)
    path = root / "lookups" / lookups.ALLOWLIST
    with open(str(path), "r+b") as handle:
        handle.truncate(1 << 30)                 # sparse: no disk space, no read
    with pytest.raises(LookupProblem) as caught:
        lookups.load_allowlist(str(root), TODAY)
    assert caught.value.row is None
    assert "1073741824 bytes" in str(caught.value) and "32 MiB" in str(caught.value)


def test_a_device_or_directory_is_not_a_lookup(tmp_path):
    root = app_with_lookups(tmp_path)
    (root / "lookups" / lookups.PORTS).unlink()
    os.symlink("/dev/zero", str(root / "lookups" / lookups.PORTS))
    with pytest.raises(LookupProblem, match="classifyport_ports.csv: is not a regular file"):
        lookups.load_ports(str(root))
    (root / "lookups" / lookups.PORTS).unlink()
    (root / "lookups" / lookups.PORTS).mkdir()
    with pytest.raises(LookupProblem, match="classifyport_ports.csv: is not a regular file"):
        lookups.load_ports(str(root))


def test_row_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(csvfile, "MAX_ROWS", 10)
    root = app_with_lookups(tmp_path)
    write(root, lookups.ALLOWLIST, "process,dest_cidr,port,host,user,reason,expires\n\n"
          + "".join("p%d.exe,,,,,r,\n" % n for n in range(10)))
    assert len(lookups.load_allowlist(str(root), TODAY)[0]) == 10
    write(root, lookups.ALLOWLIST, "process,dest_cidr,port,host,user,reason,expires\n\n"
          + "".join("p%d.exe,,,,,r,\n" % n for n in range(11)))
    with pytest.raises(LookupProblem) as caught:
        lookups.load_allowlist(str(root), TODAY)
    assert caught.value.row == 13 and "more than 10 data rows" in str(caught.value)


def test_byte_cap_is_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(csvfile, "MAX_BYTES", 64)
    root = app_with_lookups(tmp_path)
    write(root, lookups.PORTS, "port,service\n" + "80,h\n" * 9 + "443,h\n")          # 64 bytes
    assert lookups.load_ports(str(root)).ranges
    write(root, lookups.PORTS, "port,service\n" + "80,h\n" * 11)
    with pytest.raises(LookupProblem, match="68 bytes"):
        lookups.load_ports(str(root))


# --------------------------------------------------------------------------- through the command

def run_app(app, args, chunks, python=None):
    return scpv2.run_strict(args, chunks, python=python or sys.executable, command=str(app / "bin" / "classifyport.py"),
                            dispatch_dir=str(app.parent / "dispatch"))


def run_parallel(jobs):
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
    return {key: future.result() for key, future in futures.items()}


def event(image="cmd.exe", port="443", dest="8.8.8.8", **more):
    record = {"Image": image, "DestinationPort": port, "DestinationIp": dest, "Initiated": "true"}
    record.update(more)
    return record


HOSTILE_THROUGH_COMMAND = {
    "cp1252": (lookups.PROCESSES, lambda t: t.encode("utf-8") + "café.exe,LOLBin,site\r\n".encode("cp1252"),
               ["classifyport_processes.csv", "not UTF-8", "0xE9"]),
    "nul": (lookups.PORTS, lambda t: t.encode("utf-8") + b"8\x0080,http\n", ["classifyport_ports.csv", "NUL"]),
    "reversed-range": (lookups.ALLOWLIST, lambda t: (t + "[z-a]*.exe,,,,,typo,\n").encode("utf-8"),
                       ["classifyport_allowlist.csv", "z-a"]),
}


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    """Each hostile file through the command under every Python Splunk runs; {(case, python label): result}."""
    jobs, rows = {}, {}
    for case, (filename, edit, _) in HOSTILE_THROUGH_COMMAND.items():
        app = make_app(tmp_path_factory.mktemp(case))
        data = edit(read_text(app, filename))
        write(app, filename, data)
        rows[case] = _data_rows(data)
        for label, python in splunk_interpreters():
            if python is not None:
                jobs[case, label] = functools.partial(run_app, app, ["mode=annotate"], [[event()], [event()]], python)
    return rows, run_parallel(jobs)


@pytest.mark.parametrize("case", sorted(HOSTILE_THROUGH_COMMAND))
def test_hostile_file_stops_the_search_alike_under_every_python(hostile_runs, case):
    rows, results = hostile_runs
    found = {label: result for (name, label), result in results.items() if name == case}
    assert set(found) == {label for label, _ in splunk_interpreters()}, "an interpreter is missing"
    errors = {}
    for label, result in found.items():
        assert result.returncode != 0 and result.records == [], label
        errors[label] = result.messages("ERROR")
        for text in errors[label]:
            assert not TRACEBACK.search(text), text
    assert len({repr(value) for value in errors.values()}) == 1, errors
    text = "\n".join(errors["default"])
    assert "row %d" % rows[case] in text, text
    for word in HOSTILE_THROUGH_COMMAND[case][2]:
        assert word in text, (word, text)


def test_a_one_gigabyte_lookup_stops_the_search_at_once(tmp_path):
    app = make_app(tmp_path)
    with open(str(app / "lookups" / lookups.PROCESSES), "r+b") as handle:
        handle.truncate(1 << 30)
    result = run_app(app, [], [[event()]])
    assert result.returncode != 0 and result.records == []
    assert any("classifyport_processes.csv" in text and "1073741824 bytes" in text for text in result.messages("ERROR"))


def test_formula_reason_is_returned_verbatim(tmp_path):
    app = make_app(tmp_path)
    write(app, lookups.ALLOWLIST, "process,dest_cidr,port,host,user,reason,expires\n"
                                  "cmd.exe,,,,,\"=cmd|' /C calc'!A0\",\n")
    result = run_app(app, ["mode=annotate"], [[event()]])
    assert result.returncode == 0
    assert [(r["Allowlisted"], r["AllowlistReason"]) for r in result.records] == [("1", "=cmd|' /C calc'!A0")]


def allowlist_rows(count):
    """`count` rows in the mix of tools/bench.py's allowlist scenario (a third by process name,
    a third by destination CIDR in 198.18.0.0/15, a third by host glob), plus every tenth a path
    glob or a user glob; none matches the test events."""
    out = []
    for n in range(count):
        if n % 10 == 9:
            out.append("*\\tool%05d\\*,,,,,path glob %d," % (n, n) if n % 20 == 9 else
                       ",,,,corp\\svc%05d*,user glob %d," % (n, n))
        elif n % 3 == 0:
            out.append("tool%06d.exe,,443,,,bench row %d," % (n, n))
        elif n % 3 == 1:
            out.append(",198.%d.%d.0/24,,,,bench row %d," % (18 + n // 65536 % 2, n // 256 % 256, n))
        else:
            out.append(",,,LAB-%05d*,,bench row %d," % (n, n))
    return out


# Peak RSS from /proc/self/status (VmHWM, this process's own): ru_maxrss would start at the
# high-water mark of the process that forked it (pytest, big after the fuzz tests).
RSS_WRAPPER = r'''
import resource, runpy, sys, time
COMMAND = sys.argv[1]
sys.argv = [COMMAND]
started = time.perf_counter()

def peak_kb():
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

try:
    runpy.run_path(COMMAND, run_name="__main__")
finally:
    sys.stderr.write("\nRUSAGE %d %.3f\n" % (peak_kb(), time.perf_counter() - started))
'''


def test_a_100000_row_allowlist_works_in_bounded_memory(tmp_path):
    """100,000 rows load and match through the command: the last row still wins for its event,
    first-match order holds, and peak memory stays far below what one 64 KB port table per row
    would take (the former loader). The time is printed, not asserted (see tools/bench.py)."""
    app = make_app(tmp_path)
    rows = allowlist_rows(100000)
    rows[500] = "cmd.exe,,443,WS-*,,early exact row,"
    rows += ["*.exe,,,WS-*,,late glob row,", "powershell.exe,,,,,last row,"]
    write(app, lookups.ALLOWLIST, "process,dest_cidr,port,host,user,reason,expires\n" + "\n".join(rows) + "\n")
    wrapper = app / "bin" / "_rss_wrapper.py"
    wrapper.write_text(RSS_WRAPPER)
    events = [event("cmd.exe", Computer="WS-1"), event("mshta.exe", Computer="WS-2"),
              event(r"C:\x\powershell.exe"), event("cmd.exe", Computer="DB-1"),
              event(r"C:\tool00009\mshta.exe"), event("wscript.exe", dest="198.19.2.7")]
    stdin = scpv2.build_input(["mode=annotate"], [events], dispatch_dir=str(app.parent / "dispatch"))
    proc = subprocess.run([sys.executable, "-B", str(wrapper), str(app / "bin" / "classifyport.py")], input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(app / "bin"), timeout=300)
    result = scpv2.Result(proc.returncode, proc.stdout, proc.stderr)
    scpv2.check_conversation(stdin, result)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # 198.19.2.0/24 is the CIDR of the rows n with n % 3 == 1, n // 256 == 258 (n // 65536 odd):
    # the first of them not replaced by a glob (n % 10 != 9) is n = 66052.
    assert [r["AllowlistReason"] for r in result.records] == [
        "early exact row", "late glob row", "last row", "", "path glob 9", "bench row 66052"]
    assert result.records[3]["SuspicionLabel"] == "ScriptInterpreter"
    max_rss_kb, seconds = proc.stderr.decode().rsplit("\nRUSAGE ", 1)[1].split()
    print("100,000-row allowlist: %.2f s for the whole conversation, peak RSS %d MB"
          % (float(seconds), int(max_rss_kb) // 1024))
    assert int(max_rss_kb) < 400 * 1024, "peak RSS %d MB" % (int(max_rss_kb) // 1024)


# --------------------------------------------------------------------------- allowlist semantics

def reference_match(rows, image, address, port, host, user):
    """The allowlist's meaning, plainly: the first row (by row number) whose every filled cell
    matches. rows: [(row, process, cidr text, [(low, high)] or None, host, user)]."""
    basename = classifier.basename(image)
    for row, process, cidr, ports, host_glob, user_glob in sorted(rows):
        if process:
            target = image if ("\\" in process or "/" in process) else basename
            if not fnmatch.fnmatchcase(target.lower(), process.lower()):
                continue
        if ports is not None and (port is None or not any(low <= port <= high for low, high in ports)):
            continue
        if cidr:
            network = ipaddress.ip_network(cidr, strict=False)
            if address is None or address.version != network.version or address not in network:
                continue
        if host_glob and not fnmatch.fnmatchcase(host.lower(), host_glob.lower()):
            continue
        if user_glob and not fnmatch.fnmatchcase(user.lower(), user_glob.lower()):
            continue
        return row
    return None


GLOB_ALPHABET = "aAbB.-\\*?[]!"
CIDRS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "10.1.2.0/24", "0.0.0.0/0", "::/0", "fe80::/10",
         "fe80::1/128", "192.168.0.0/16"]
ADDRESSES = [None, "10.1.2.3", "10.1.9.9", "10.200.0.1", "192.168.1.1", "8.8.8.8", "fe80::1", "fe80::2", "2001:db8::1"]

# Small alphabets, so that rows and events meet often; every kind of index key appears.
short = st.text("abAB", max_size=2)
exact_cells = st.text("abAB", min_size=1, max_size=2)
glob_cells = st.one_of(
    st.text(GLOB_ALPHABET, min_size=1, max_size=5),                      # anything, odd sets included
    st.builds(lambda a: a + "*", short),                                  # literal prefix
    st.builds(lambda a: "*" + a, short),                                  # literal suffix
    st.builds(lambda a, b: a + "?" + b, short, short),
    st.builds(lambda a, b: "%s*%s" % (a, b), short, short),
    st.builds(lambda a: "[ab]" + a + "*", short), st.builds(lambda a: "*[!a]" + a, short),
    st.builds(lambda a: "*\\%s\\*" % a, st.text("ab", min_size=1, max_size=2)),   # a whole path component
    st.builds(lambda a: "*[\\%s\\]*" % a, st.text("ab", min_size=1, max_size=2)),  # a set, not a component
    st.builds(lambda a, b: "%s*%s*%s*" % (b, a, a), st.text("ab", min_size=1, max_size=1), short),  # repeated parts
    st.sampled_from(["*", "?", "*?*", "[", "a[", "]", "[]]", "[!]", "[a-b]*", "*[A-B]"]))
cells = st.one_of(st.just(""), st.just(""), exact_cells, glob_cells)
process_cells = st.one_of(cells, st.builds(lambda a, b: a + "\\" + b, glob_cells, cells),
                          st.sampled_from(["c:\\a\\b", "c:\\a\\*", "*\\b"]))
port_cells = st.one_of(st.none(), st.none(), st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)).map(
    lambda pair: (pair[0], pair[0] + pair[1])), min_size=1, max_size=2))
cidr_cells = st.one_of(st.just(""), st.just(""), st.sampled_from(CIDRS))
rule_rows = st.lists(st.tuples(process_cells, cidr_cells, port_cells, cells, cells), max_size=40)
values = st.text("abAB", max_size=3)
events = st.lists(st.tuples(
    st.builds(lambda a, b: a + b, st.sampled_from(["", "c:\\a\\", "C:\\B\\a\\", "/a/b/", "\\\\", "c:\\ab\\"]),
              values),
    st.sampled_from(ADDRESSES), st.one_of(st.none(), st.integers(0, 9)), values, values), min_size=1, max_size=12)


def _build(raw_rules, row_numbers):
    rows, rules = [], []
    for number, (process, cidr, ports, host, user) in zip(row_numbers, raw_rules):
        network = ipaddress.ip_network(cidr, strict=False) if cidr else None
        try:
            rules.append(AllowRule(number, process, network, ports, host, user, "row %d" % number))
        except PatternProblem:
            continue
        rows.append((number, process, cidr, ports, host, user))
    return rows, rules


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_rules=rule_rows, probes=events, data=st.data())
def test_indexed_allowlist_matches_the_plain_reading(raw_rules, probes, data):
    """First match by row order, whatever the index files a rule under; rows may arrive in any order."""
    numbers = data.draw(st.permutations(list(range(2, 2 + len(raw_rules)))))
    rows, rules = _build(raw_rules, numbers)
    allow = Allowlist(rules)
    for image, address_text, port, host, user in probes + probes:      # twice: the second pass hits the caches
        address = parse_ip(address_text) if address_text else None
        found = allow.match(image, classifier.basename(image), ip_number(address_text) if address_text else None,
                                port, host, user)
        assert (found.row if found else None) == reference_match(rows, image, address, port, host, user)


@settings(max_examples=150, deadline=None)
@given(raw_rules=rule_rows, probes=events)
def test_tiny_caches_change_nothing(raw_rules, probes):
    """The per-value caches are cleared when full; with room for one entry every lookup is a miss."""
    rows, rules = _build(raw_rules, range(2, 2 + len(raw_rules)))
    previous = bounded.LARGE_CACHE_LIMIT
    bounded.LARGE_CACHE_LIMIT = 1
    try:
        allow = Allowlist(rules)
        for image, address_text, port, host, user in probes + probes[::-1]:
            address = parse_ip(address_text) if address_text else None
            found = allow.match(image, classifier.basename(image), ip_number(address_text) if address_text else None,
                                port, host, user)
            assert (found.row if found else None) == reference_match(rows, image, address, port, host, user)
        assert max(len(allow._image_cache), len(allow._host_cache), len(allow._user_cache)) <= 1
    finally:
        bounded.LARGE_CACHE_LIMIT = previous


@pytest.mark.parametrize("pattern, prefix, suffix, component", [
    ("lab-*", "lab-", "", ""),
    ("*.corp.example", "", ".corp.example", ""),
    ("a[bc]d", "a", "d", ""),
    ("*\\ccmcache\\*", "", "", "ccmcache"),
    ("*[\\abc\\]*", "", "", ""),                 # a set, not a component
    ("c:\\program files\\*\\x.exe", "c:\\program files\\", "\\x.exe", "program files"),
    ("ab*[x", "ab", "x", ""),                    # an unclosed [ is literal: "x" is still a true suffix
])
def test_index_keys_of_a_glob(pattern, prefix, suffix, component):
    assert allowlist_module.literal_prefix(pattern) == prefix
    assert allowlist_module.literal_suffix(pattern) == suffix
    assert allowlist_module.whole_component(pattern) == component


def test_the_ten_thousand_row_mix_is_all_indexed():
    """tools/bench.py's 10,000-row allowlist leaves no row to a full scan but the path globs'
    partners that have no literal end (none in its mix): each candidate event looks at a handful."""
    rows = [row.split(",") for row in allowlist_rows(10000)]
    rules = []
    for number, cells in enumerate(rows, start=2):
        network = ipaddress.ip_network(cells[1]) if cells[1] else None
        rules.append(AllowRule(number, cells[0], network, None, cells[3], cells[4], cells[5]))
    allow = Allowlist(rules)
    assert allow._always == ()
    found = []
    allow._image_candidates(r"c:\windows\system32\cmd.exe", "cmd.exe", found)
    allow._host.candidates("lab-00002x", found)
    assert sum(len(hit) for hit in found) == 1
