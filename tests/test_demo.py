"""`make demo`: tools/demo.py over the bundled samples, checked as a user sees it (its printed table)."""
import collections
import datetime
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, shared_path

DEMO = os.path.join(ROOT, "tools", "demo.py")
SAMPLES = os.path.join(ROOT, "samples", "sysmon_eid3.jsonl")
COLUMNS = ["_time", "host", "User", "ImageBasename", "CommandLine", "ParentImage",
           "DestinationIp", "DestPort", "IsInternal", "SuspicionLabel"]
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def run_demo(*args):
    return subprocess.run([sys.executable, DEMO] + list(args), capture_output=True, text=True, timeout=120, cwd=ROOT)


def parse_table(stdout):
    """(rows as dicts, summary line) from the fixed-width table: column spans come from the dash line."""
    lines = stdout.splitlines()
    dash = next(i for i, line in enumerate(lines) if line.startswith("-") and set(line) <= {"-", " "})
    spans = [m.span() for m in re.finditer(r"-+", lines[dash])]
    spans[-1] = (spans[-1][0], None)

    def cells(line):
        return [line[a:b].strip() if b else line[a:].strip() for a, b in spans]

    header = cells(lines[dash - 1])
    rows, i = [], dash + 1
    while i < len(lines) and lines[i].strip():
        rows.append(dict(zip(header, cells(lines[i]))))
        i += 1
    summary = [line for line in lines[i:] if line.strip()]
    return header, rows, summary


def load_samples():
    with open(SAMPLES, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def demo():
    result = run_demo()
    assert result.returncode == 0, result.stderr
    header, rows, summary = parse_table(result.stdout)
    return result, header, rows, summary


def _rows(rows, basename):
    return [row for row in rows if row["ImageBasename"] == basename]


class TestSamples:
    """The sample file is ours and shaped like the real data."""

    REQUIRED = ("UtcTime", "ProcessGuid", "Image", "User", "Protocol", "Initiated", "SourceIp", "SourcePort",
                "DestinationIsIpv6", "DestinationIp", "DestinationPort", "_time", "host", "EventCode", "Computer")

    def test_every_event_has_the_sysmon_fields_as_strings(self):
        samples = load_samples()
        assert len(samples) >= 30
        for event in samples:
            missing = [name for name in self.REQUIRED if name not in event]
            assert not missing, (event, missing)
            assert all(isinstance(value, str) for value in event.values()), event
            assert event["EventCode"] == "3"

    def test_time_matches_utctime(self):
        for event in load_samples():
            utc = event["UtcTime"].replace("T", " ").rstrip("Z")
            moment = datetime.datetime.strptime(utc, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
            assert abs(moment.timestamp() - float(event["_time"])) < 0.001, event

    def test_the_real_quirks_are_present(self):
        samples = load_samples()
        images = {event["Image"] for event in samples}
        assert {"<unknown process>", "&lt;unknown process&gt;", "System"} <= images
        zero = "{00000000-0000-0000-0000-000000000000}"
        assert all(event["ProcessGuid"] == zero for event in samples if "unknown process" in event["Image"])
        dests = {event["DestinationIp"] for event in samples}
        assert "0:0:0:0:0:0:0:1" in dests and any(d.startswith("fe80:0:0:0:") for d in dests)
        assert any(d.startswith("172.217.") for d in dests) and any(re.match(r"172\.(1[6-9]|2\d|3[01])\.", d) for d in dests)
        names = [event.get("DestinationPortName") for event in samples]
        assert "-" in names and "" in names and None in names
        assert any(event["DestinationPort"].startswith("0") for event in samples)
        assert any(event["Initiated"] == "false" for event in samples)
        assert any(event["UtcTime"].endswith("Z") for event in samples)
        assert any(event["Image"] != event["Image"].lower() and event["Image"].endswith(".EXE") for event in samples)
        assert any("ProcessId" not in event for event in samples)


class TestDemoOutput:

    def test_table_has_the_original_columns(self, demo):
        _, header, rows, _ = demo
        assert header == COLUMNS
        assert rows

    def test_the_four_atomic_red_team_tests(self, demo):
        rows = demo[2]
        art = "93.184.216.34"
        assert [(r["DestinationIp"], r["DestPort"], r["SuspicionLabel"]) for r in _rows(rows, "powershell.exe")
                if r["DestinationIp"] == art] == [(art, "443", "ScriptInterpreter")]
        assert [(r["DestinationIp"], r["DestPort"], r["SuspicionLabel"]) for r in _rows(rows, "certutil.exe")] \
            == [(art, "80", "LOLBin")]
        nslookup = _rows(rows, "nslookup.exe")
        assert len(nslookup) == 10
        assert {(r["DestinationIp"], r["DestPort"], r["SuspicionLabel"]) for r in nslookup} == {("8.8.8.8", "53", "LOLBin")}
        assert [(r["DestinationIp"], r["DestPort"], r["SuspicionLabel"]) for r in _rows(rows, "bitsadmin.exe")] \
            == [(art, "443", "LOLBin")]

    def test_benign_inbound_and_lookalike_events_are_absent(self, demo):
        rows = demo[2]
        shown = {row["ImageBasename"] for row in rows}
        for name in ("svchost.exe", "chrome.exe", "OneDrive.exe", "Teams.exe", "lsass.exe", "xcmd.exe",
                     "dsregcmd.exe", "<unknown process>", "&lt;unknown process&gt;", "System", "pwsh.exe"):
            assert name not in shown, name
        assert not [row for row in rows if row["DestPort"] == "5985"]
        # the inbound PowerShell event (DNS reply from 8.8.8.8:53) is not shown
        assert not [row for row in _rows(rows, "powershell.exe") if row["DestinationIp"] == "8.8.8.8"]

    def test_only_outbound_labelled_events_are_shown(self, demo):
        rows = demo[2]
        by_time = {}
        for event in load_samples():
            stamp = datetime.datetime.fromtimestamp(float(event["_time"]), tz=datetime.timezone.utc)
            by_time[stamp.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (stamp.microsecond // 1000)] = event
        for row in rows:
            event = by_time[row["_time"]]
            assert event["Initiated"] == "true" and row["SuspicionLabel"]
            assert row["host"] == event["host"] and row["DestinationIp"] == event["DestinationIp"]

    def test_rows_are_newest_first_with_iso_utc_time(self, demo):
        rows = demo[2]
        assert all(ISO.match(row["_time"]) for row in rows)
        times = [row["_time"] for row in rows]
        assert times == sorted(times, reverse=True)

    def test_is_internal(self, demo):
        rows = demo[2]
        internal = {(row["ImageBasename"], row["DestinationIp"]): row["IsInternal"] for row in rows}
        assert internal[("powershell.exe", "10.20.5.25")] == "1"
        assert internal[("powershell.exe", "93.184.216.34")] == "0"
        assert internal[("PowerShell.EXE", "172.217.14.206")] == "0"
        assert internal[("mshta.exe", "172.20.10.15")] == "1"
        assert internal[("powershell.exe", "0:0:0:0:0:0:0:1")] == "1"
        assert internal[("WMIC.exe", "fe80:0:0:0:c6b1:5d2e:8f40:1a9c")] == "1"

    def test_quirky_labels(self, demo):
        rows = demo[2]
        assert [(r["DestPort"], r["SuspicionLabel"]) for r in _rows(rows, "regsvr32.exe")] == [("80", "LOLBin")]
        assert [r["SuspicionLabel"] for r in _rows(rows, "PowerShell.EXE")] == ["ScriptInterpreter"]
        assert [r["SuspicionLabel"] for r in _rows(rows, "notepad.exe")] == ["UnusualSystemProcess"]
        assert [r["SuspicionLabel"] for r in _rows(rows, "mshta.exe")] == ["ScriptInterpreter"]
        assert [r["SuspicionLabel"] for r in _rows(rows, "rundll32.exe")] == ["LOLBin"]

    def test_commandline_and_parentimage_are_empty_as_in_the_original(self, demo):
        assert all(row["CommandLine"] == "" and row["ParentImage"] == "" for row in demo[2])

    def test_summary_line(self, demo):
        rows, summary = demo[2], demo[3]
        counts = collections.Counter(row["SuspicionLabel"] for row in rows)
        expected = "%d events in, %d labelled out: %s" % (
            len(load_samples()), len(rows), ", ".join("%s=%d" % item for item in sorted(counts.items())))
        assert summary == [expected]


class TestDemoFailures:

    def test_a_failing_command_exits_non_zero_with_a_message(self):
        result = run_demo("--python", "/bin/false")
        assert result.returncode != 0
        assert "classifyport failed" in result.stderr

    def test_a_missing_interpreter_exits_non_zero_with_a_message(self, tmp_path):
        result = run_demo("--python", str(tmp_path / "no-such-python"))
        assert result.returncode != 0
        assert "could not run" in result.stderr

    def test_bad_samples_exit_non_zero_with_a_message(self, tmp_path):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"Image": "x"}\nnot json\n', encoding="utf-8")
        result = run_demo("--samples", str(bad))
        assert result.returncode != 0
        assert "line 2 is not JSON" in result.stderr


def test_the_original_search_on_the_samples_differs_only_as_documented(demo):
    """The original SPL (oracle) over the same samples: misses nslookup (test 3), labels the lookalikes and inbound."""
    import oracle_spl
    original = oracle_spl.load(shared_path("seed", "original-detection.txt"))
    theirs = collections.Counter((row["ImageBasename"], row["DestinationIp"], str(row["DestPort"]), row["SuspicionLabel"])
                                 for row in original.run(load_samples()))
    ours = collections.Counter((row["ImageBasename"], row["DestinationIp"], row["DestPort"], row["SuspicionLabel"])
                               for row in demo[2])
    assert ours - theirs == collections.Counter({("nslookup.exe", "8.8.8.8", "53", "LOLBin"): 10})
    assert theirs - ours == collections.Counter({
        ("xcmd.exe", "93.184.216.34", "443", "ScriptInterpreter"): 1,
        ("dsregcmd.exe", "40.126.32.74", "443", "ScriptInterpreter"): 1,
        ("powershell.exe", "8.8.8.8", "53", "ScriptInterpreter"): 1,
        ("pwsh.exe", "1.1.1.1", "53", "ScriptInterpreter"): 1,
    })
