"""Options, bad input and the lookups of `| classifyport`, over SCP v2 as splunkd runs it.

Expected results are the contract's (issue 2), written per case. Lookup tests
run a copy of the app (bin/ with the vendored splunklib, default/, lookups/) in
a temporary directory with one lookup changed at a time.
"""
import csv
import datetime
import functools
import io
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import scpv2
from conftest import make_app

OUTPUT_FIELDS = ("ImageBasename", "DestPort", "IsScriptInterpreter", "IsLOLBin", "IsUnusualSystem",
                 "IsInternal", "SuspicionLabel", "Allowlisted", "AllowlistReason",
                 "MatchedOn", "mitre_technique_id", "risk_score")
OPTIONS = ("profile", "mode", "direction", "allowlist", "ports", "image", "port", "dest")
LOOKUPS = ("classifyport_processes.csv", "classifyport_ports.csv", "classifyport_internal_networks.csv",
           "classifyport_allowlist.csv", "classifyport_field_profiles.csv")
TRACEBACK = re.compile(r'Traceback|File "|\.py", line|Error at "|line \d+ :')


def converse(args, chunks, python=None, command=scpv2.COMMAND, **extra):
    result = scpv2.run_strict(args, chunks, python=python or sys.executable, command=command, **extra)
    assert not TRACEBACK.search(result.stdout.decode("utf-8", "replace")), result.stdout[-3000:]
    assert b"Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def run_parallel(jobs):
    """{key: result, or the exception raised} of each job, run a few at a time (each one starts a subprocess)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
    return {key: future.exception() or future.result() for key, future in futures.items()}


def outcome(results, key):
    value = results[key]
    if isinstance(value, BaseException):
        raise value
    return value


def sysmon(image, port="443", dest="8.8.8.8", initiated="true", **more):
    record = {"Image": image, "DestinationPort": port, "DestinationIp": dest, "Initiated": initiated}
    record.update(more)
    return record


def tagged(records):
    """Give each record a case id `c<n>` so results can be matched back to inputs."""
    return [dict(record, case="c%d" % n) for n, record in enumerate(records)]


def split(records, parts=2):
    return [records[i::parts] for i in range(parts)] if len(records) >= parts else [records]


def labels(result):
    return {r["case"]: r["SuspicionLabel"] for r in result.records}


def assert_filter_matches_annotate(args, chunks, expected):
    """annotate labels each record as `expected` says ({case: label}); filter returns exactly the labelled, in order."""
    annotated = converse(list(args) + ["mode=annotate"], chunks)
    assert annotated.returncode == 0
    order = [record["case"] for chunk in chunks for record in chunk]
    assert [r["case"] for r in annotated.records] == order
    assert labels(annotated) == expected
    filtered = converse(list(args), chunks)
    assert filtered.returncode == 0
    assert [r["case"] for r in filtered.records] == [case for case in order if expected[case]]
    return annotated


# --------------------------------------------------------------------------- options

def test_ports_option_replaces_the_port_lookup():
    ports = ["80", "443", "8000", "8050", "8100", "7999", "8101", "53", "3389", "08000"]
    records = tagged([sysmon(r"C:\Windows\System32\cmd.exe", port=p) for p in ports])
    watched = {"80", "443", "8000", "8050", "8100", "08000"}
    expected = {r["case"]: ("ScriptInterpreter" if r["DestinationPort"] in watched else "") for r in records}
    result = assert_filter_matches_annotate(['ports=80,443,8000-8100'], split(records), expected)
    assert {r["DestinationPort"]: r["DestPort"] for r in result.records}["08000"] == "8000"


def test_direction_any_labels_inbound_events():
    records = tagged([sysmon("cmd.exe", initiated="false"), sysmon("cmd.exe", initiated="true"),
                      sysmon("cmd.exe", initiated=""), sysmon("chrome.exe", initiated="false")])
    expected = {"c0": "ScriptInterpreter", "c1": "ScriptInterpreter", "c2": "ScriptInterpreter", "c3": ""}
    assert_filter_matches_annotate(["direction=any"], [records], expected)
    expected_outbound = dict(expected, c0="")
    assert_filter_matches_annotate(["direction=outbound"], [records], expected_outbound)


def cim(app="", process_name="", dest_port="443", dest_ip="", dest="", direction="outbound", **more):
    record = {"app": app, "process_name": process_name, "dest_port": dest_port, "dest_ip": dest_ip,
              "dest": dest, "direction": direction}
    record.update(more)
    return record


def test_cim_profile():
    records = tagged([
        cim(app="powershell.exe", dest_ip="10.1.1.1"),                                 # c0 app
        cim(process_name=r"C:\Windows\System32\certutil.exe", dest="8.8.8.8"),         # c1 else process_name
        cim(app="chrome.exe", process_name="cmd.exe"),                                 # c2 app wins
        cim(app="cmd.exe", dest_ip="8.8.8.8", dest="10.0.0.1"),                        # c3 dest_ip wins
        cim(app="cmd.exe", dest_ip="", dest="192.168.4.4"),                            # c4 else dest
        cim(app="cmd.exe", direction="inbound"),                                       # c5 inbound
        cim(app="cmd.exe", direction=""),                                              # c6 no direction
        cim(app="cmd.exe", dest_port="8080"),                                          # c7 port not listed
        dict(sysmon(r"C:\Windows\System32\cmd.exe"), app="", dest_port=""),            # c8 sysmon names only
        cim(app="notepad.exe", dest_port="0022"),                                      # c9
    ])
    expected = {"c0": "ScriptInterpreter", "c1": "LOLBin", "c2": "", "c3": "ScriptInterpreter",
                "c4": "ScriptInterpreter", "c5": "", "c6": "ScriptInterpreter", "c7": "", "c8": "",
                "c9": "UnusualSystemProcess"}
    result = assert_filter_matches_annotate(["profile=cim"], split(records, 3), expected)
    got = {r["case"]: r for r in result.records}
    assert [got[c]["IsInternal"] for c in ("c0", "c1", "c3", "c4")] == ["1", "0", "0", "1"]
    assert got["c1"]["ImageBasename"] == "certutil.exe"
    assert got["c2"]["ImageBasename"] == "chrome.exe"
    assert got["c9"]["DestPort"] == "22"
    inbound = converse(["profile=cim", "direction=any"], [records])
    assert "c5" in [r["case"] for r in inbound.records]


def mde(name, port="443", ip="8.8.8.8", action="ConnectionSuccess", **more):
    record = {"InitiatingProcessFileName": name, "RemotePort": port, "RemoteIP": ip, "ActionType": action}
    record.update(more)
    return record


def test_mde_profile():
    records = tagged([
        mde("powershell.exe", ip="10.2.3.4"),                         # c0
        mde("powershell.exe", action="InboundConnectionAccepted"),    # c1 inbound
        mde("RUNDLL32.EXE", port="80", ip="::ffff:192.168.1.1"),      # c2
        mde("xcmd.exe"),                                              # c3
        mde("mshta.exe", port="5985"),                                # c4 port not listed
        mde("msedge.exe", action="ConnectionAttempt", ip="fe80:0:0:0:1:2:3:4"),  # c5
        dict(sysmon(r"C:\Windows\System32\cmd.exe"), InitiatingProcessFileName=""),  # c6 sysmon names only
    ])
    expected = {"c0": "ScriptInterpreter", "c1": "", "c2": "LOLBin", "c3": "", "c4": "", "c5": "LOLBin", "c6": ""}
    result = assert_filter_matches_annotate(["profile=mde"], split(records), expected)
    got = {r["case"]: r for r in result.records}
    assert [got[c]["IsInternal"] for c in ("c0", "c1", "c2", "c5")] == ["1", "0", "1", "1"]
    inbound = converse(["profile=mde", "direction=any", "mode=annotate"], [records])
    assert labels(inbound)["c1"] == "ScriptInterpreter"


def test_field_overrides():
    records = tagged([
        # c0: the override fields decide, not Image/DestinationPort/DestinationIp
        sysmon("chrome.exe", port="8080", dest="8.8.8.8", proc=r"C:\x\notepad.exe", p="0080", d="10.9.9.9"),
        # c1: Image says cmd.exe but image= points elsewhere, and there it is empty
        sysmon("cmd.exe", proc="", p="443", d=""),
        # c2: the profile's direction field still applies
        sysmon("chrome.exe", initiated="false", proc="cmd.exe", p="443", d="8.8.8.8"),
        # c3
        sysmon("chrome.exe", proc="CertUtil.exe", p="25", d="::ffff:10.0.0.1"),
    ])
    expected = {"c0": "UnusualSystemProcess", "c1": "", "c2": "", "c3": "LOLBin"}
    result = assert_filter_matches_annotate(["image=proc", "port=p", "dest=d"], [records], expected)
    got = {r["case"]: r for r in result.records}
    assert (got["c0"]["ImageBasename"], got["c0"]["DestPort"], got["c0"]["IsInternal"]) == ("notepad.exe", "80", "1")
    assert got["c3"]["IsInternal"] == "1"
    warnings = result.messages("WARN")
    assert any(re.search(r"\b1\b", w) and "proc" in w for w in warnings), warnings
    # One override keeps the profile's other fields.
    only_port = converse(["port=p", "mode=annotate"], [records])
    assert labels(only_port) == {"c0": "", "c1": "ScriptInterpreter", "c2": "", "c3": ""}
    assert [r["DestPort"] for r in only_port.records] == ["80", "443", "443", "25"]
    # Overrides work with another profile too.
    cim_records = tagged([cim(app="cmd.exe", dest_port="8080", svc="443")])
    assert labels(converse(["profile=cim", "port=svc", "mode=annotate"], [cim_records])) == {"c0": "ScriptInterpreter"}


# --------------------------------------------------------------------------- bad options

def getinfo_errors(result):
    assert result.returncode != 0, "the search must fail"
    assert len(result.chunks) == 1, "a command failing at getinfo answers getinfo only"
    meta, body = result.chunks[0]
    assert body == ""
    errors = [text for level, text in meta.get("inspector", {}).get("messages", []) if level == "ERROR"]
    assert errors, meta
    for text in errors:
        assert not TRACEBACK.search(text), text
    return errors


def lookup_errors(result):
    """A broken lookup stops the search before any record is returned: the lists load with the
    first data chunk (not at getinfo, to keep the getinfo reply fast), whose reply carries the
    ERROR; the command then exits non-zero."""
    assert result.returncode != 0, "the search must fail"
    assert result.records == [], "no record may pass a command whose lookups are broken"
    assert len(result.chunks) <= 2, "the command stops at the first data chunk"
    errors = [text for meta, _ in result.chunks
              for level, text in meta.get("inspector", {}).get("messages", []) if level == "ERROR"]
    assert errors, result.chunks
    for text in errors:
        assert not TRACEBACK.search(text), text
    return errors


BAD_OPTIONS = [
    pytest.param(["mode=bogus"], ["mode", "bogus", "filter", "annotate"], id="mode"),
    pytest.param(["ports=abc"], ["ports", "abc", "65535"], id="ports-abc"),
    pytest.param(["ports=80,eighty"], ["ports", "eighty"], id="ports-word"),
    pytest.param(["ports=100-90"], ["ports", "100-90"], id="ports-reversed"),
    pytest.param(["ports=70000"], ["ports", "70000", "65535"], id="ports-too-big"),
    pytest.param(["profile=x"], ["profile", "x", "sysmon", "cim", "mde"], id="profile"),
    pytest.param(["direction=sideways"], ["direction", "sideways", "outbound", "any"], id="direction"),
    pytest.param(["allowlist=maybe"], ["allowlist", "maybe", "true", "false"], id="allowlist"),
    pytest.param(["colour=red"], ["colour"] + list(OPTIONS), id="unknown-option"),
    pytest.param(["Image"], ["Image", "image=", "port=", "dest="], id="positional-field"),
    pytest.param(["mode=annotate", "profile=cim", "Image", "DestinationPort"], ["Image", "DestinationPort"],
                 id="positional-after-options"),
    pytest.param(["mode=annotate", "direction=in"], ["direction", "outbound", "any"], id="one-bad-among-good"),
]


GOOD_OPTIONS = [["allowlist=f"], ["allowlist=false"], ["allowlist=0"], ["allowlist=t"], ["allowlist=TRUE"],
                ["mode=annotate", "direction=any", "profile=sysmon"], ["ports=443"], ["ports=0-65535"]]


@pytest.fixture(scope="module")
def option_runs():
    """Every BAD_OPTIONS and GOOD_OPTIONS conversation, run in parallel once; {tuple(args): Result}."""
    jobs = {}
    for args in [param.values[0] for param in BAD_OPTIONS] + GOOD_OPTIONS:
        jobs[tuple(args)] = functools.partial(converse, args, [[sysmon("cmd.exe")], [sysmon("cmd.exe")]])
    return run_parallel(jobs)


@pytest.mark.parametrize("args, named", BAD_OPTIONS)
def test_bad_option_fails_at_getinfo(option_runs, args, named):
    errors = getinfo_errors(outcome(option_runs, tuple(args)))
    text = "\n".join(errors)
    for word in named:
        assert word in text, "%r not named in %r" % (word, errors)


def test_bad_option_fails_at_getinfo_under_each_python(python):
    result = converse(["mode=bogus"], [[sysmon("cmd.exe")], [sysmon("cmd.exe")]], python=python)
    errors = getinfo_errors(result)
    assert any("mode" in e and "filter" in e and "annotate" in e for e in errors), errors


@pytest.mark.parametrize("args", GOOD_OPTIONS, ids=" ".join)
def test_good_options_are_accepted(option_runs, args):
    result = outcome(option_runs, tuple(args))
    assert result.returncode == 0
    assert result.messages("ERROR") == []
    assert [r["SuspicionLabel"] for r in result.records] == ["ScriptInterpreter"] * 2


# --------------------------------------------------------------------------- missing fields

def test_missing_fields_warn_once_per_field_with_count_across_chunks():
    chunks = [
        [{"DestinationPort": "443", "DestinationIp": "8.8.8.8", "case": "c0"},           # no Image column
         {"DestinationPort": "443", "DestinationIp": "8.8.8.8", "case": "c1"}],
        [sysmon("", port="", case="c2"),                                                # neither (empty)
         sysmon(r"C:\Windows\System32\cmd.exe", port="", case="c3"),                    # no port
         sysmon(r"C:\Windows\System32\cmd.exe", case="c4")],                            # labelled
        [{"Image": "cmd.exe", "DestinationIp": "8.8.8.8", "case": "c5"},                # no port column
         {"Image": "powershell.exe", "DestinationIp": "8.8.8.8", "case": "c6"}],
        [sysmon("", case="c7"), sysmon("", initiated="false", case="c8")],             # no Image
    ]
    result = converse([], chunks)
    assert result.returncode == 0
    assert [r["case"] for r in result.records] == ["c4"]
    warnings = result.messages("WARN")
    assert len(warnings) == 2, warnings
    image = [w for w in warnings if re.search(r"\bImage\b", w)]
    port = [w for w in warnings if re.search(r"\bDestinationPort\b", w)]
    assert len(image) == 1 and len(port) == 1, warnings
    assert re.search(r"\b5\b", image[0]), image      # c0, c1, c2, c7, c8
    assert re.search(r"\b4\b", port[0]), port        # c2, c3, c5, c6
    assert result.messages("ERROR") == []

    annotated = converse(["mode=annotate"], chunks)
    assert [r["SuspicionLabel"] for r in annotated.records] == ["", "", "", "", "ScriptInterpreter", "", "", "", ""]
    assert sorted(annotated.messages("WARN")) == sorted(warnings)


def test_no_warning_when_fields_are_present():
    result = converse(["mode=annotate"], [[sysmon("chrome.exe")], [sysmon("cmd.exe")]])
    assert result.messages() == []


def test_missing_field_warning_names_the_profile_fields():
    chunks = [[cim(app="", process_name="", dest_port="443")], [cim(app="cmd.exe", dest_port="")]]
    result = converse(["profile=cim"], chunks)
    warnings = result.messages("WARN")
    assert len(warnings) == 2, warnings
    assert any("app" in w and "process_name" in w and re.search(r"\b1\b", w) for w in warnings), warnings
    assert any("dest_port" in w and re.search(r"\b1\b", w) for w in warnings), warnings


# --------------------------------------------------------------------------- lookups

@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def run_app(app, args, chunks):
    return converse(args, chunks, command=str(app / "bin" / "classifyport.py"),
                    dispatch_dir=str(app.parent / "dispatch"))


def lookup_text(app, name):
    with open(str(app / "lookups" / name), encoding="utf-8-sig", newline="") as handle:
        return handle.read()


def write_lookup(app, name, text):
    with open(str(app / "lookups" / name), "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def append_row(app, name, line):
    """Append `line` to a lookup; return its row number as a spreadsheet shows it (header = row 1)."""
    text = lookup_text(app, name)
    if text and not text.endswith("\n"):
        text += "\n"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    write_lookup(app, name, text + line + "\n")
    return len(rows) + 1


def _missing_column(app):
    text = lookup_text(app, "classifyport_processes.csv")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    index = [cell.strip().lower() for cell in rows[0]].index("category")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([cell for i, cell in enumerate(row) if i != index] for row in rows)
    write_lookup(app, "classifyport_processes.csv", out.getvalue())
    return "classifyport_processes.csv", 1, ["category"]


def _bad_cidr(app):
    row = append_row(app, "classifyport_internal_networks.csv", "10.0.0.0/33,typo")
    return "classifyport_internal_networks.csv", row, ["10.0.0.0/33"]


def _bad_port(app):
    row = append_row(app, "classifyport_ports.csv", "eighty,http")
    return "classifyport_ports.csv", row, ["eighty"]


def _duplicate_process(app):
    row = append_row(app, "classifyport_processes.csv", "cmd.exe,LOLBin,site")
    return "classifyport_processes.csv", row, ["cmd.exe", "ScriptInterpreter", "LOLBin"]


def _duplicate_process_other_case(app):
    row = append_row(app, "classifyport_processes.csv", "NOTEPAD.EXE,ScriptInterpreter,site")
    return "classifyport_processes.csv", row, ["NOTEPAD.EXE", "UnusualSystemProcess", "ScriptInterpreter"]


def _unknown_category(app):
    row = append_row(app, "classifyport_processes.csv", "evil.exe,Malware,site")
    return "classifyport_processes.csv", row, ["Malware"]


def _allowlist_expiry(app):
    row = append_row(app, "classifyport_allowlist.csv", "cmd.exe,,,,,test,soon")
    return "classifyport_allowlist.csv", row, ["soon"]


def _allowlist_bad_cidr(app):
    row = append_row(app, "classifyport_allowlist.csv", "cmd.exe,10.0.0.0/33,,,,test,")
    return "classifyport_allowlist.csv", row, ["10.0.0.0/33"]


def _allowlist_bad_port(app):
    row = append_row(app, "classifyport_allowlist.csv", "cmd.exe,,https,,,test,")
    return "classifyport_allowlist.csv", row, ["https"]


def _profile_unknown_role(app):
    row = append_row(app, "classifyport_field_profiles.csv", "sysmon,colour,1,Colour,")
    return "classifyport_field_profiles.csv", row, ["colour"]


BROKEN = [_missing_column, _bad_cidr, _bad_port, _duplicate_process, _duplicate_process_other_case,
          _unknown_category, _allowlist_expiry, _allowlist_bad_cidr, _allowlist_bad_port, _profile_unknown_role]


@pytest.fixture(scope="module")
def lookup_runs(tmp_path_factory):
    """One app copy per broken lookup, all run in parallel once: ({key: what the breaker changed}, {key: Result})."""
    facts, jobs = {}, {}
    for breaker in BROKEN:
        app = make_app(tmp_path_factory.mktemp("broken"))
        facts[breaker.__name__] = breaker(app)
        jobs[breaker.__name__] = functools.partial(run_app, app, ["mode=annotate"], [[sysmon("cmd.exe")]])
    for name in LOOKUPS:
        app = make_app(tmp_path_factory.mktemp("empty"))
        write_lookup(app, name, "")
        jobs["empty " + name] = functools.partial(run_app, app, [], [[sysmon("cmd.exe")]])
    for name in MISSABLE:
        app = make_app(tmp_path_factory.mktemp("missing"))
        os.remove(str(app / "lookups" / name))
        jobs["missing " + name] = functools.partial(run_app, app, [], [[sysmon("cmd.exe")]])
    return facts, run_parallel(jobs)


@pytest.mark.parametrize("breaker", BROKEN, ids=lambda f: f.__name__.strip("_"))
def test_broken_lookup_fails_the_search_naming_file_row_and_problem(lookup_runs, breaker):
    facts, results = lookup_runs
    filename, row, problem = facts[breaker.__name__]
    errors = lookup_errors(outcome(results, breaker.__name__))
    text = "\n".join(errors)
    assert filename in text, errors
    assert re.search(r"\brow %d\b" % row, text), "row %d not named in %r" % (row, errors)
    for word in problem:
        assert word in text, "%r not named in %r" % (word, errors)


@pytest.mark.parametrize("name", LOOKUPS)
def test_empty_lookup_fails_the_search(lookup_runs, name):
    errors = lookup_errors(outcome(lookup_runs[1], "empty " + name))
    assert any(name in e and "empty" in e.lower() for e in errors), errors


MISSABLE = ("classifyport_ports.csv", "classifyport_processes.csv")


@pytest.mark.parametrize("name", MISSABLE)
def test_missing_lookup_fails_the_search(lookup_runs, name):
    errors = lookup_errors(outcome(lookup_runs[1], "missing " + name))
    assert any(name in e for e in errors), errors


def test_copied_app_runs_clean(app):
    """The copy itself works, so the failures above come from the one change each makes."""
    result = run_app(app, [], [[sysmon("cmd.exe")]])
    assert result.returncode == 0 and result.messages() == []
    assert [r["SuspicionLabel"] for r in result.records] == ["ScriptInterpreter"]


def _date(days):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


ALLOWLIST_HEADER = "process,dest_cidr,port,host,user,reason,expires"


def write_allowlist(app):
    rows = [
        "powershell.exe,10.0.0.0/8,,,,IT automation to internal REST APIs,%s" % _date(60),   # row 2
        "*.exe,,53,,,\"DNS, from any exe\",",                                               # row 3
        ",,,web*,,web farm health checks,",                                                   # row 4
        "cmd.exe,,,,corp\\svc_*,service accounts,%s" % _date(400),                            # row 5
        "certutil.exe,,,,,old software distribution exception,%s" % _date(-30),              # row 6 expired
        "bitsadmin.exe,,443,,,older exception,%s" % _date(-400),                             # row 7 expired
    ]
    write_lookup(app, "classifyport_allowlist.csv", ALLOWLIST_HEADER + "\r\n" + "\r\n".join(rows) + "\r\n")
    return app


ALLOWLIST_RUNS = {"filter": [], "annotate": ["mode=annotate"], "off-filter": ["allowlist=f"],
                  "off-annotate": ["allowlist=f", "mode=annotate"]}


@pytest.fixture(scope="module")
def allowlist_runs(tmp_path_factory):
    """The allowlist app run once per ALLOWLIST_RUNS entry, in parallel; {name: Result}."""
    app = write_allowlist(make_app(tmp_path_factory.mktemp("allowlist")))
    return run_parallel({name: functools.partial(run_app, app, args, _allowlist_chunks())
                         for name, args in ALLOWLIST_RUNS.items()})


# (record, reason of the allowlist row that must match it, or None; label when not allowlisted)
ALLOWLIST_CASES = [
    (sysmon("powershell.exe", dest="10.1.2.3"), "IT automation to internal REST APIs", "ScriptInterpreter"),
    (sysmon("powershell.exe", dest="8.8.8.8"), None, "ScriptInterpreter"),
    (sysmon(r"C:\Windows\System32\WindowsPowerShell\v1.0\PowerShell.exe", port="80", dest="10.200.0.1"),
     "IT automation to internal REST APIs", "ScriptInterpreter"),
    (sysmon("powershell.exe", dest="::ffff:10.1.2.3"), "IT automation to internal REST APIs", "ScriptInterpreter"),
    (sysmon("cmd.exe", port="53"), "DNS, from any exe", "ScriptInterpreter"),
    (sysmon("cmd.exe", port="443"), None, "ScriptInterpreter"),
    (sysmon("rundll32.exe", host="web01"), "web farm health checks", "LOLBin"),
    (sysmon("rundll32.exe", host="db01"), None, "LOLBin"),
    (sysmon("rundll32.exe", host="xweb01"), None, "LOLBin"),
    (sysmon("cmd.exe", User="CORP\\svc_deploy"), "service accounts", "ScriptInterpreter"),
    (sysmon("cmd.exe", User="CORP\\alice"), None, "ScriptInterpreter"),
    (sysmon("certutil.exe"), None, "LOLBin"),                     # row 6 expired
    (sysmon("bitsadmin.exe"), None, "LOLBin"),                    # row 7 expired
    (sysmon("notepad.exe", dest="10.0.0.5"), None, "UnusualSystemProcess"),
]


def _allowlist_chunks():
    records = []
    for n, (record, _, _) in enumerate(ALLOWLIST_CASES):
        extra = {"host": "ws01", "User": "CORP\\bob"}
        extra.update(record)
        records.append(dict(extra, case="c%d" % n))
    return split(records, 3)


def test_allowlist_filter_mode_drops_matching_events(allowlist_runs):
    result = outcome(allowlist_runs, "filter")
    assert result.returncode == 0
    order = [r["case"] for chunk in _allowlist_chunks() for r in chunk]
    expected = [case for case in order if ALLOWLIST_CASES[int(case[1:])][1] is None]
    assert [r["case"] for r in result.records] == expected
    for r in result.records:
        assert r["Allowlisted"] == "0" and r["AllowlistReason"] == ""


def test_allowlist_annotate_mode_marks_matching_events(allowlist_runs):
    result = outcome(allowlist_runs, "annotate")
    assert result.returncode == 0
    assert len(result.records) == len(ALLOWLIST_CASES)
    for r in result.records:
        _, reason, label = ALLOWLIST_CASES[int(r["case"][1:])]
        if reason is None:
            assert (r["SuspicionLabel"], r["Allowlisted"], r["AllowlistReason"]) == (label, "0", ""), r
        else:
            assert (r["SuspicionLabel"], r["Allowlisted"], r["AllowlistReason"]) == ("", "1", reason), r
            # The flags still say what the process is.
            assert "1" in (r["IsScriptInterpreter"], r["IsLOLBin"], r["IsUnusualSystem"])


@pytest.mark.parametrize("run", ["filter", "annotate"])
def test_expired_allowlist_rows_warn_exactly_once(allowlist_runs, run):
    warnings = outcome(allowlist_runs, run).messages("WARN")
    assert len(warnings) == 1, warnings
    assert "classifyport_allowlist.csv" in warnings[0]
    assert re.search(r"\b2\b", warnings[0]) and re.search(r"\b6\b", warnings[0]) and re.search(r"\b7\b", warnings[0])


def test_allowlist_f_turns_it_off(allowlist_runs):
    for run in ("off-filter", "off-annotate"):
        result = outcome(allowlist_runs, run)
        assert result.returncode == 0
        assert len(result.records) == len(ALLOWLIST_CASES)
        for r in result.records:
            assert r["SuspicionLabel"] == ALLOWLIST_CASES[int(r["case"][1:])][2]
            assert (r["Allowlisted"], r["AllowlistReason"]) == ("0", "")


def test_lookup_edits_change_the_lists(app):
    """The lists live in the lookups: a site's process, port and network rows take effect."""
    append_row(app, "classifyport_processes.csv", "Evil.EXE,LOLBin,site")
    append_row(app, "classifyport_ports.csv", "8443,alt-https")
    append_row(app, "classifyport_internal_networks.csv", "203.0.113.0/24,our public range")
    records = tagged([sysmon(r"C:\x\evil.exe", port="8443", dest="203.0.113.9"),
                      sysmon("cmd.exe", port="8443", dest="203.0.114.9")])
    result = run_app(app, ["mode=annotate"], [records])
    assert [(r["SuspicionLabel"], r["IsLOLBin"], r["IsInternal"]) for r in result.records] == \
        [("LOLBin", "1", "1"), ("ScriptInterpreter", "0", "0")]


def test_lookups_saved_by_excel_are_read(app):
    """A UTF-8 BOM, CRLF line ends, upper-case padded headers and padded cells are tolerated."""
    text = lookup_text(app, "classifyport_ports.csv")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows[0] = [" %s " % cell.upper() for cell in rows[0]]
    rows = [rows[0]] + [[" %s " % cell for cell in row] for row in rows[1:]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    with open(str(app / "lookups" / "classifyport_ports.csv"), "w", encoding="utf-8-sig", newline="") as handle:
        handle.write(out.getvalue())
    result = run_app(app, [], [[sysmon("cmd.exe", port="443"), sysmon("cmd.exe", port="8080")]])
    assert result.returncode == 0, result.messages()
    assert [r["DestPort"] for r in result.records] == ["443"]


def test_allowlist_dates_are_read_alike_under_every_python(tmp_path):
    """An expiry that is not YYYY-MM-DD must get the same answer from every interpreter the app supports."""
    from conftest import splunk_interpreters
    app = make_app(tmp_path)
    row = append_row(app, "classifyport_allowlist.csv", "cmd.exe,,,,,compact date,20991231")
    outcomes = {}
    for label, python in splunk_interpreters():
        if python is None:
            pytest.fail("Python %s not found" % label)
        result = converse([], [[sysmon("cmd.exe")]], python=python, command=str(app / "bin" / "classifyport.py"),
                          dispatch_dir=str(app.parent / "dispatch"))
        outcomes[label] = (result.returncode, result.messages("ERROR"), [r["SuspicionLabel"] for r in result.records])
    assert len(set(map(repr, outcomes.values()))) == 1, outcomes
    # ... and that answer is the documented one: the row is refused, naming file, row and value.
    errors = "\n".join(outcomes["default"][1])
    assert "classifyport_allowlist.csv" in errors and "row %d" % row in errors and "20991231" in errors


AUDIT_WRAPPER = r'''
import json, os, runpy, sys
COMMAND = sys.argv[1]
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
seen = []
def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (isinstance(flags, int) and flags & WRITE)
        name = os.fsdecode(path) if isinstance(path, (str, bytes)) else repr(path)
        seen.append(["write" if writes else "read", name])
    elif event.startswith(("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                           "os.fork", "os.forkpty", "os.remove", "os.rename", "os.mkdir", "shutil.")):
        seen.append([event, repr(args)[:200]])
sys.addaudithook(hook)
sys.argv = [COMMAND]
try:
    runpy.run_path(COMMAND, run_name="__main__")
finally:
    sys.stderr.write("\nAUDIT " + json.dumps(seen) + "\n")
'''


def test_command_reads_only_its_lookups_and_writes_no_file(app):
    """Audit hooks record every file the command opens and every socket or process it would start."""
    import subprocess
    wrapper = app / "bin" / "_audit_wrapper.py"
    wrapper.write_text(AUDIT_WRAPPER)
    command = str(app / "bin" / "classifyport.py")
    before = sorted(p for p in app.parent.rglob("*") if "__pycache__" not in p.parts)
    stdin = scpv2.build_input(["mode=annotate", "image=DestinationIp"],
                              [[sysmon("cmd.exe", DestinationIp="/etc/passwd")]],
                              dispatch_dir=str(app.parent / "dispatch"))
    proc = subprocess.run([sys.executable, "-B", str(wrapper), command], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=str(app / "bin"), timeout=120)
    result = scpv2.Result(proc.returncode, proc.stdout, proc.stderr)
    scpv2.check_conversation(stdin, result)
    assert proc.returncode == 0, proc.stderr[-2000:]
    audit = json.loads(proc.stderr.decode().rsplit("\nAUDIT ", 1)[1])
    assert [event for event in audit if event[0] not in ("read", "write")] == []
    assert [path for kind, path in audit if kind == "write"] == []
    lookups_dir = str(app / "lookups")
    data_files = [path for kind, path in audit
                  if not path.endswith((".py", ".pyc", ".so", ".pth")) and "python" not in path.lower()]
    assert data_files and all(os.path.dirname(os.path.abspath(path)) == lookups_dir for path in data_files), data_files
    assert "/etc/passwd" not in [path for _, path in audit]
    after = sorted(p for p in app.parent.rglob("*") if "__pycache__" not in p.parts)
    assert after == before
