"""Seed parity: `| classifyport` against an independent oracle of the ORIGINAL SPL search.

Part 1 pins the oracle's Splunk semantics on small hand-made cases.
Part 2 runs every real Sysmon EID 3 event in ../shared/data/sysmon through the
command over SCP v2 (annotate and filter mode, several chunks) and through the
oracle, and requires every difference to be one of the documented, deliberate
ones, each recognised here independently of the command's code:

  (a) inbound      the event is inbound (Initiated=false): the app never labels it
  (b) substring    the original matched only because its regex is unanchored
                   (dsregcmd.exe matches "cmd\\.exe"); the app matches exact names
  (c) app-added    a name the app adds to the original's 31 (nslookup.exe, the
                   network-capable LOLBAS binaries): lookups/classifyport_processes.csv
                   rows whose `source` is not original_spl
  (d) internal     IsInternal ranges beyond the original's RFC 1918 regex: loopback,
                   link-local, CGNAT, IPv6 ::1, fe80::/10, fc00::/7, IPv4-mapped IPv6
  (e) slash path   the app's basename also splits on `/`; the original splits on `\\` only

Any other difference fails with the event's _id. The counts per reason are in
SUMMARY and printed by test_parity_summary (run pytest with -rA or -s to see them).
"""
import collections
import csv
import glob
import ipaddress
import json
import os

import pytest

import oracle_spl
from conftest import ROOT, shared_path

SEED = ("seed", "original-detection.txt")
SYSMON = ("data", "sysmon")
EXPECTED_EVENTS = 1781  # data/README.md: 1,781 real Sysmon EID 3 events
CHUNK_CUTS = (1, 300, 800, 1300)  # five execute chunks of uneven size (1, 299, 500, 500, 481)

SUMMARY = {}  # filled by the parity fixture; printed by test_parity_summary


# ====================================================================== part 1: SPL semantics

class TestSplSemantics:
    """The building blocks, independent of the seed text."""

    def test_string_literal_escapes(self):
        # The seed writes replace(Image, ".*\\\\", ""): the regex Splunk gets is .*\\ (one escaped backslash).
        assert oracle_spl.spl_string(r".*\\\\") == r".*\\"
        # An unknown escape keeps its backslash: "\.exe" is the regex \.exe (a literal dot).
        assert oracle_spl.spl_string(r"(cmd)\.exe") == r"(cmd)\.exe"
        assert oracle_spl.spl_string(r"say \"hi\"") == 'say "hi"'

    @pytest.mark.parametrize("text, number", [
        ("443", 443), ("0443", 443), ("010", 10), ("00053", 53), ("135", 135),
        ("443.0", 443.0), ("-1", -1), ("70000", 70000),
    ])
    def test_tonumber_parses_decimal_leading_zeros_never_octal(self, text, number):
        assert oracle_spl.tonumber(text) == number

    @pytest.mark.parametrize("text", [" 443", "443 ", "\t80", "", "-", "https", "4 43", "44three", None])
    def test_tonumber_is_null_for_blanks_words_empty_and_missing(self, text):
        assert oracle_spl.tonumber(text) is None

    def test_where_in_drops_null_and_compares_numerically(self):
        ports = (80, 443)
        assert oracle_spl.spl_in(None, ports) is False
        assert oracle_spl.spl_in(443.0, ports) is True
        assert oracle_spl.spl_in(8443, ports) is False

    @pytest.mark.parametrize("image, basename", [
        (r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe", "powershell.exe"),
        (r"C:\WINDOWS\system32\CertUtil.EXE", "CertUtil.EXE"),
        ("C:/x/cmd.exe", "C:/x/cmd.exe"),             # forward slashes are not split
        (r"C:\tools/bin\sub/cmd.exe", "sub/cmd.exe"),  # greedy: up to the LAST backslash only
        ("System", "System"),
        ("<unknown process>", "<unknown process>"),
        ("", ""),
        (None, None),
    ])
    def test_replace_removes_everything_up_to_the_last_backslash(self, image, basename):
        assert oracle_spl.replace(image, r".*\\", "") == basename

    def test_match_is_an_unanchored_search_and_null_stays_null(self):
        regex = r"(cmd|hh)\.exe"
        assert oracle_spl.match("cmd.exe", regex) is True
        assert oracle_spl.match("xcmd.exe", regex) is True
        assert oracle_spl.match("dsregcmd.exe", regex) is True
        assert oracle_spl.match("cmd.exe.bak", regex) is True
        assert oracle_spl.match("cmdl32.exe", regex) is False
        assert oracle_spl.match(None, regex) is None

    def test_lower(self):
        assert oracle_spl.lower("PowerShell.EXE") == "powershell.exe"
        assert oracle_spl.lower(None) is None

    def test_sort_descending_numeric_nulls_last_stable(self):
        rows = [{"_time": "5", "n": 1}, {"_time": None, "n": 2}, {"_time": "10", "n": 3},
                {"_time": "5", "n": 4}, {"_time": "9.5", "n": 5}]
        assert [row["n"] for row in oracle_spl.sort_rows(rows, "_time", True)] == [3, 5, 1, 4, 2]


@pytest.fixture(scope="module")
def original():
    return oracle_spl.load(shared_path(*SEED))


class TestReadingTheSeed:
    """What the oracle reads out of the seed text."""

    def test_base_search_and_port_list(self, original):
        assert "EventCode=3" in original.base_search
        assert original.ports == (80, 443, 53, 25, 22, 3389, 135)

    def test_basename_regex(self, original):
        assert original.basename_regex == r".*\\" and original.basename_replacement == ""

    def test_the_31_names_in_three_categories(self, original):
        names = {flag: original.category_names(flag) for flag in original.flag_fields}
        assert original.flag_fields == ("IsScriptInterpreter", "IsLOLBin", "IsUnusualSystem")
        assert names["IsScriptInterpreter"] == tuple(n + ".exe" for n in
                                                     "powershell pwsh cmd wscript cscript mshta wmic".split())
        assert len(names["IsLOLBin"]) == 16 and "bitsadmin.exe" in names["IsLOLBin"]
        assert len(names["IsUnusualSystem"]) == 8 and "snippingtool.exe" in names["IsUnusualSystem"]
        assert "nslookup.exe" not in sum(names.values(), ())

    def test_label_order_and_default(self, original):
        assert original.label_order == (("IsScriptInterpreter", "ScriptInterpreter"), ("IsLOLBin", "LOLBin"),
                                         ("IsUnusualSystem", "UnusualSystemProcess"))
        assert original.default_label == "Unknown"

    def test_table_and_sort(self, original):
        assert original.table_columns == ("_time", "host", "User", "ImageBasename", "CommandLine", "ParentImage",
                                          "DestinationIp", "DestPort", "IsInternal", "SuspicionLabel")
        assert (original.sort_field, original.sort_descending) == ("_time", True)

    @pytest.mark.parametrize("dest, internal", [
        ("10.1.2.3", 1), ("172.16.0.1", 1), ("172.31.255.255", 1), ("192.168.5.2", 1),
        ("172.217.14.206", 0), ("172.32.0.1", 0), ("93.184.216.34", 0),
        ("127.0.0.1", 0), ("169.254.169.254", 0), ("100.64.0.1", 0),
        ("0:0:0:0:0:0:0:1", 0), ("fe80:0:0:0:5cb9:6d15:e592:60fe", 0), ("::ffff:10.0.0.1", 0),
        ("10.example.com", 1),  # a regex on text: a host name starting "10." counts as internal
        ("", 0), (None, 0),
    ])
    def test_is_internal_is_the_rfc1918_regex(self, original, dest, internal):
        event = {"Image": r"C:\x\cmd.exe", "DestinationPort": "443"}
        if dest is not None:
            event["DestinationIp"] = dest
        assert original.evaluate(event)["IsInternal"] == internal


def _ev(image, port="443", dest="93.184.216.34", **extra):
    event = {"Image": image, "DestinationPort": port, "DestinationIp": dest}
    event.update(extra)
    return event


class TestOriginalBehaviour:
    """The original search's answers on hand-made events (what the app deliberately changes)."""

    @pytest.mark.parametrize("image, label", [
        (r"C:\Users\Public\xcmd.exe", "ScriptInterpreter"),      # unanchored regex: lookalike matches
        (r"C:\Windows\System32\dsregcmd.exe", "ScriptInterpreter"),
        (r"C:\Windows\System32\cmd.exe", "ScriptInterpreter"),
        (r"C:\WINDOWS\System32\WindowsPowerShell\v1.0\PowerShell.EXE", "ScriptInterpreter"),
        (r"C:\Windows\System32\certutil.exe", "LOLBin"),
        (r"C:\Windows\System32\notepad.exe", "UnusualSystemProcess"),
        (r"C:\x\notepad.exe.cmd.exe", "ScriptInterpreter"),      # two regexes match: case() takes the first
    ])
    def test_labels(self, original, image, label):
        result = original.evaluate(_ev(image))
        assert result["kept"] and result["SuspicionLabel"] == label

    @pytest.mark.parametrize("image", [
        r"C:\Windows\System32\nslookup.exe",   # not in the original's lists (its own test 3 uses it)
        r"C:\Windows\System32\svchost.exe", "System", "<unknown process>", "&lt;unknown process&gt;",
        r"C:\Windows\System32\cmdl32.exe",
    ])
    def test_not_labelled(self, original, image):
        assert not original.evaluate(_ev(image))["kept"]

    def test_forward_slash_path_is_not_split_but_still_matches(self, original):
        result = original.evaluate(_ev("C:/x/cmd.exe"))
        assert result["ImageBasename"] == "C:/x/cmd.exe" and result["kept"]

    def test_inbound_is_labelled_by_the_original(self, original):
        assert original.evaluate(_ev(r"C:\x\powershell.exe", Initiated="false"))["kept"]

    @pytest.mark.parametrize("port, kept, dest_port", [
        ("443", True, 443), ("0443", True, 443), ("53", True, 53), ("8080", False, 8080),
        (" 443", False, None), ("https", False, None), ("", False, None),
    ])
    def test_ports(self, original, port, kept, dest_port):
        result = original.evaluate(_ev(r"C:\x\powershell.exe", port=port))
        assert (result["kept"], result["DestPort"]) == (kept, dest_port)

    def test_missing_port_field_is_dropped(self, original):
        event = _ev(r"C:\x\powershell.exe")
        del event["DestinationPort"]
        assert original.evaluate(event)["dropped_by"] == "port"

    def test_run_gives_the_table_newest_first(self, original):
        events = [dict(_ev(r"C:\x\cmd.exe"), _time="100", host="a"),
                  dict(_ev(r"C:\x\svchost.exe"), _time="300", host="b"),
                  dict(_ev(r"C:\x\mshta.exe", dest="10.0.0.5"), _time="200", host="c")]
        rows = original.run(events)
        assert [row["host"] for row in rows] == ["c", "a"]
        assert list(rows[0]) == list(original.table_columns)
        assert rows[0]["CommandLine"] is None and rows[0]["IsInternal"] == 1


# ====================================================================== part 2: parity on real data

_EXTRA_INTERNAL = (  # the app's ranges beyond RFC 1918 (issue 2), written here, not read from the app
    ("IPv4 loopback 127/8", "127.0.0.0/8"),
    ("IPv4 link-local 169.254/16", "169.254.0.0/16"),
    ("CGNAT 100.64/10", "100.64.0.0/10"),
    ("IPv6 loopback ::1", "::1/128"),
    ("IPv6 link-local fe80::/10", "fe80::/10"),
    ("IPv6 unique local fc00::/7", "fc00::/7"),
)
_RFC1918 = tuple(ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def extra_internal_reason(dest):
    """Why the app calls `dest` internal when the original's regex does not, or None."""
    text = (dest or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    prefix = ""
    if address.version == 6 and address.ipv4_mapped is not None:
        address, prefix = address.ipv4_mapped, "IPv4-mapped IPv6 of "
        if any(address in net for net in _RFC1918):
            return prefix + "RFC 1918"
    for name, net in _EXTRA_INTERNAL:
        network = ipaddress.ip_network(net)
        if address.version == network.version and address in network:
            return prefix + name
    return None


def independent_basename(image):
    """Last `\\` or `/` component (the MANIFEST's reference rule, case kept)."""
    image = image or ""
    return image[max(image.rfind("\\"), image.rfind("/")) + 1:]


def app_added_names():
    """{lower-case name: source} of the rows the app adds to the original's names."""
    with open(os.path.join(ROOT, "lookups", "classifyport_processes.csv"), encoding="utf-8-sig", newline="") as f:
        return {row["process"].strip().lower(): row["source"].strip()
                for row in csv.DictReader(f) if row["source"].strip() != "original_spl"}


def _is_inbound(event):
    return (event.get("Initiated") or "").strip().lower() == "false"


def _spl_text(value):
    """A value the oracle computed, as text in the command's output form ("" for null)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _wire(event):
    """The event as splunkd would send it: every field, text values (provenance JSON-encoded)."""
    out = {}
    for name, value in event.items():
        if value is None:
            continue
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def _chunks(records):
    cuts = (0,) + CHUNK_CUTS + (len(records),)
    return [records[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


class TestTheExplainerHasTeeth:
    """_compare accepts only the documented differences: hand-made command answers it must reject or explain."""

    def _agreeing(self, original, event):
        """The command record that agrees with the oracle on every compared field."""
        oracle = original.evaluate(event)
        return {"SuspicionLabel": oracle["SuspicionLabel"] if oracle["kept"] else "",
                "ImageBasename": _spl_text(oracle["ImageBasename"]), "DestPort": _spl_text(oracle["DestPort"]),
                "IsInternal": _spl_text(oracle["IsInternal"])}

    def _reasons(self, original, event, **ours):
        record = self._agreeing(original, event)
        record.update(ours)
        return [(field, reason) for field, reason, _ in _compare(original, app_added_names(), event, record)[2]]

    def test_agreement_has_no_difference(self, original):
        assert self._reasons(original, _ev(r"C:\x\cmd.exe")) == []

    def test_documented_differences(self, original):
        assert self._reasons(original, _ev(r"C:\x\cmd.exe", Initiated="false"), SuspicionLabel="") \
            == [("SuspicionLabel", "(a) inbound")]
        assert self._reasons(original, _ev(r"C:\x\xcmd.exe"), SuspicionLabel="") \
            == [("SuspicionLabel", "(b) substring")]
        assert self._reasons(original, _ev(r"C:\x\nslookup.exe", port="53"), SuspicionLabel="LOLBin") \
            == [("SuspicionLabel", "(c) app-added")]
        assert self._reasons(original, _ev(r"C:\x\cmd.exe", dest="127.0.0.1"), IsInternal="1") \
            == [("IsInternal", "(d) IPv4 loopback 127/8")]
        assert self._reasons(original, _ev(r"C:\x\cmd.exe", dest="::ffff:192.168.1.5"), IsInternal="1") \
            == [("IsInternal", "(d) IPv4-mapped IPv6 of RFC 1918")]
        assert self._reasons(original, _ev(r"C:\x\cmd.exe", dest="fe80:0:0:0:1:2:3:4"), IsInternal="1") \
            == [("IsInternal", "(d) IPv6 link-local fe80::/10")]
        assert self._reasons(original, _ev("C:/x/cmd.exe"), ImageBasename="cmd.exe") \
            == [("ImageBasename", "(e) slash path")]

    @pytest.mark.parametrize("event, ours", [
        (_ev(r"C:\x\cmd.exe"), {"SuspicionLabel": ""}),                      # missed an outbound original name
        (_ev(r"C:\x\cmd.exe"), {"SuspicionLabel": "LOLBin"}),                # wrong category
        (_ev(r"C:\x\svchost.exe"), {"SuspicionLabel": "LOLBin"}),            # labelled a name nobody lists
        (_ev(r"C:\x\nslookup.exe", port="8080"), {"SuspicionLabel": "LOLBin"}),  # port not in the list
        (_ev(r"C:\x\cmd.exe", Initiated="false"), {"SuspicionLabel": "ScriptInterpreter"}),  # inbound labelled
        (_ev(r"C:\x\cmd.exe", dest="8.8.8.8"), {"IsInternal": "1"}),
        (_ev(r"C:\x\cmd.exe", dest="10.1.2.3"), {"IsInternal": "0"}),
        (_ev(r"C:\x\cmd.exe", dest="10.example.com"), {"IsInternal": "0"}),
        (_ev(r"C:\x\cmd.exe"), {"ImageBasename": "x"}),
        (_ev(r"C:\x\cmd.exe", port="0443"), {"DestPort": "0443"}),
        (_ev(r"C:\x\cmd.exe", port=" 443"), {"DestPort": "443"}),
    ])
    def test_undocumented_differences_are_rejected(self, original, event, ours):
        reasons = self._reasons(original, event, **ours)
        assert reasons and any(reason is None for _, reason in reasons), reasons


@pytest.fixture(scope="module")
def real_events():
    folder = shared_path(*SYSMON)
    events = []
    for path in sorted(glob.glob(os.path.join(folder, "*.eid3.jsonl"))):
        with open(path, encoding="utf-8") as handle:
            events.extend(json.loads(line) for line in handle if line.strip())
    assert len(events) == EXPECTED_EVENTS, "expected %d real EID 3 events, found %d" % (EXPECTED_EVENTS, len(events))
    return events


@pytest.fixture(scope="module")
def runs(real_events):
    import scpv2
    records = [_wire(event) for event in real_events]
    annotate = scpv2.run(["mode=annotate"], _chunks(records))
    filtered = scpv2.run([], _chunks(records))
    for name, result in (("annotate", annotate), ("filter", filtered)):
        assert result.returncode == 0, "%s run failed: %s %s" % (name, result.messages(), result.stderr[-2000:])
        assert not result.messages("ERROR"), "%s run: %s" % (name, result.messages("ERROR"))
    return records, annotate, filtered


def _compare(original, added, event, ours):
    """[(field, reason or None, detail)] for every field where the command and the oracle differ."""
    oracle = original.evaluate(event)
    diffs = []
    o_label = oracle["SuspicionLabel"] if oracle["kept"] else ""
    u_label = ours["SuspicionLabel"]
    base = independent_basename(event.get("Image")).lower()
    exact_in_original = any(base in original.category_names(flag) for flag in original.flag_fields)
    substring_in_original = any(oracle[flag] == 1 for flag in original.flag_fields)
    if u_label and _is_inbound(event):
        diffs.append(("SuspicionLabel", None, "the command labelled an inbound event"))
    elif o_label != u_label:
        reason = None
        if o_label and not u_label:
            if _is_inbound(event):
                reason = "(a) inbound"
            elif not exact_in_original and base not in added:
                reason = "(b) substring"
        elif u_label and not o_label:
            if base in added and not substring_in_original and oracle["dropped_by"] == "category":
                reason = "(c) app-added"
        elif not exact_in_original and base in added:
            reason = "(b+c) substring in the original, app-added name here"
        diffs.append(("SuspicionLabel", reason, "%r -> %r (%s)" % (o_label, u_label, base)))

    o_base, u_base = _spl_text(oracle["ImageBasename"]), ours["ImageBasename"]
    if o_base != u_base:
        reason = "(e) slash path" if "/" in o_base and u_base == o_base.rsplit("/", 1)[1] else None
        diffs.append(("ImageBasename", reason, "%r -> %r" % (o_base, u_base)))

    o_port, u_port = _spl_text(oracle["DestPort"]), ours["DestPort"]
    if o_port != u_port:
        diffs.append(("DestPort", None, "%r -> %r" % (o_port, u_port)))

    o_int, u_int = _spl_text(oracle["IsInternal"]), ours["IsInternal"]
    if o_int != u_int:
        why = extra_internal_reason(event.get("DestinationIp")) if (o_int, u_int) == ("0", "1") else None
        diffs.append(("IsInternal", "(d) " + why if why else None, "%r -> %r (%r)"
                      % (o_int, u_int, event.get("DestinationIp"))))
    return oracle, o_label, diffs


@pytest.fixture(scope="module")
def parity(original, real_events, runs):
    records, annotate, filtered = runs
    added = app_added_names()
    assert len(annotate.records) == len(real_events)
    label_reasons, basename_reasons, port_reasons = collections.Counter(), collections.Counter(), collections.Counter()
    internal_all, internal_labelled = collections.Counter(), collections.Counter()
    names_by_reason = collections.defaultdict(collections.Counter)
    unexplained = []
    oracle_labelled, ours_labelled, agree = [], [], 0
    for event, ours in zip(real_events, annotate.records):
        assert ours.get("_id") == event["_id"], "order changed at %s" % event["_id"]
        oracle, o_label, diffs = _compare(original, added, event, ours)
        if o_label:
            oracle_labelled.append(event["_id"])
        if ours["SuspicionLabel"]:
            ours_labelled.append(event["_id"])
        if o_label and o_label == ours["SuspicionLabel"]:
            agree += 1
        either_labelled = bool(o_label or ours["SuspicionLabel"])
        for field, reason, detail in diffs:
            if reason is None:
                unexplained.append("%s %s: %s" % (event["_id"], field, detail))
                continue
            if field == "SuspicionLabel":
                label_reasons[reason] += 1
                names_by_reason[reason][independent_basename(event.get("Image")).lower()] += 1
            elif field == "ImageBasename":
                basename_reasons[reason] += 1
            elif field == "DestPort":
                port_reasons[reason] += 1
            else:
                internal_all[reason] += 1
                if either_labelled:
                    internal_labelled[reason] += 1
    SUMMARY.update({
        "events": len(real_events),
        "labelled by the original (oracle)": len(oracle_labelled),
        "labelled by classifyport": len(ours_labelled),
        "labelled by both, same label": agree,
        "filter mode returned": len(filtered.records),
        "SuspicionLabel differences by reason": dict(sorted(label_reasons.items())),
        "SuspicionLabel differences: names": {k: dict(v.most_common()) for k, v in sorted(names_by_reason.items())},
        "ImageBasename differences by reason": dict(sorted(basename_reasons.items())),
        "DestPort differences by reason": dict(sorted(port_reasons.items())),
        "IsInternal differences by reason (all events)": dict(sorted(internal_all.items())),
        "IsInternal differences by reason (events labelled by either)": dict(sorted(internal_labelled.items())),
        "unexplained differences": len(unexplained),
    })
    return {"unexplained": unexplained, "ours_labelled": ours_labelled, "oracle_labelled": oracle_labelled,
            "annotate": annotate, "filtered": filtered, "records": records, "added": added}


class TestParityOnRealData:

    def test_annotate_returns_every_event_with_its_fields_unchanged(self, runs):
        records, annotate, _ = runs
        assert len(annotate.records) == len(records)
        for sent, got in zip(records, annotate.records):
            for name, value in sent.items():
                assert got.get(name) == value, "%s: field %s changed" % (sent["_id"], name)

    def test_every_difference_is_a_documented_one(self, parity):
        unexplained = parity["unexplained"]
        assert not unexplained, "%d unexplained difference(s):\n%s" % (len(unexplained), "\n".join(unexplained[:50]))

    def test_the_two_searches_agree_on_most_labels(self, parity):
        assert SUMMARY["labelled by the original (oracle)"] > 500
        assert SUMMARY["labelled by both, same label"] >= 0.9 * SUMMARY["labelled by the original (oracle)"]

    def test_filter_mode_returns_exactly_the_events_annotate_labelled(self, parity):
        filtered, annotate = parity["filtered"], parity["annotate"]
        assert [record["_id"] for record in filtered.records] == parity["ours_labelled"]
        labelled = {record["_id"]: record for record in annotate.records if record["SuspicionLabel"]}
        for record in filtered.records:
            assert record == labelled[record["_id"]]

    def test_cross_check_with_the_corpus_reference_fields(self, real_events, parity):
        """_ref_* come from a naive rule; compare only where its definition agrees with ours (MANIFEST)."""
        annotate, added = parity["annotate"], parity["added"]
        flag_of = {"script_interpreter": "IsScriptInterpreter", "lolbin": "IsLOLBin",
                   "unusual_system_process": "IsUnusualSystem"}
        counts, problems = collections.Counter(), []
        for event, ours in zip(real_events, annotate.records):
            eid = event["_id"]
            # basename: last \ or / component, lower-cased: the same rule, so always equal.
            if event["_ref_image_basename"] != ours["ImageBasename"].lower():
                problems.append("%s basename %r vs %r" % (eid, event["_ref_image_basename"], ours["ImageBasename"]))
            counts["basename compared"] += 1
            # port list: a decimal string compare, same as ours when the port is written canonically.
            text = event.get("DestinationPort", "")
            if text.isdigit() and str(int(text)) == text:
                in_list = ours["DestPort"] != "" and int(ours["DestPort"]) in (80, 443, 53, 25, 22, 3389, 135)
                if event["_ref_port_in_list"] != in_list:
                    problems.append("%s port_in_list %r vs %r" % (eid, event["_ref_port_in_list"], in_list))
                counts["port compared"] += 1
            # category: exact name in the original's lists, direction ignored, like our flags.
            flags = {flag: ours[flag] for flag in flag_of.values()}
            if event["_ref_category"]:
                expected = {flag: "1" if flag == flag_of[event["_ref_category"]] else "0" for flag in flags}
                if flags != expected:
                    problems.append("%s category %r vs %r" % (eid, event["_ref_category"], flags))
                counts["category compared"] += 1
            elif "1" in flags.values():
                if ours["ImageBasename"].lower() not in added:
                    problems.append("%s category None vs %r" % (eid, flags))
                counts["category: app-added name, reference has none"] += 1
            else:
                counts["category compared"] += 1
            # internal: RFC 1918 (mapped IPv6 unwrapped) is a subset of ours.
            ref = event["_ref_dest_rfc1918"]
            if ref is True and ours["IsInternal"] != "1":
                problems.append("%s rfc1918 True vs IsInternal %r" % (eid, ours["IsInternal"]))
            elif ref is None and ours["IsInternal"] != "0":
                problems.append("%s not an IP vs IsInternal %r" % (eid, ours["IsInternal"]))
            elif ref is False and ours["IsInternal"] == "1":
                if extra_internal_reason(event.get("DestinationIp")) is None:
                    problems.append("%s rfc1918 False vs IsInternal 1 (%r)" % (eid, event.get("DestinationIp")))
                counts["internal: beyond RFC 1918"] += 1
            else:
                counts["internal compared"] += 1
        SUMMARY["_ref_* cross-check"] = dict(sorted(counts.items()))
        assert not problems, "\n".join(problems[:50])

    def test_parity_summary(self, parity, record_property):
        """Prints the numbers for the closing note (visible with pytest -rA or -s)."""
        print("\nSEED PARITY SUMMARY")
        print(json.dumps(SUMMARY, indent=2, sort_keys=False))
        for key, value in SUMMARY.items():
            record_property(key, value)
        assert SUMMARY["events"] == EXPECTED_EVENTS
        assert SUMMARY["filter mode returned"] == SUMMARY["labelled by classifyport"]
