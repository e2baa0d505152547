"""The enrichment macro `classifyport_enrich_process`, replayed by tools/enrich.py.

Part 1: the replay reads its steps out of default/macros.conf (an edited copy of
        the macro changes what the replay does; a macro of another shape is a
        clear error, never a guess).
Part 2: the Splunk semantics on hand-made events: GUID case and braces, hosts,
        the all-zero GUID, coalesce, values() order, look-back, what is returned.
Part 3: the real Sysmon EID 1 / EID 3 pairs in ../shared/data/sysmon. The
        expected enrichment is computed here independently (uuid.UUID parses
        the GUIDs; nothing from enrich's internals), and the number of enriched
        EID 3 events per source must be MANIFEST.md's "EID 3 rows with an EID 1
        sibling". The counts are in SUMMARY, printed by test_real_data_summary
        (run pytest with -rA or -s to see them).
"""
import collections
import glob
import json
import os
import re
import subprocess
import uuid

import pytest

import enrich
from conftest import ROOT, shared_path

MACROS = os.path.join(ROOT, "default", "macros.conf")
ENRICHED = ("CommandLine", "ParentImage", "OriginalFileName")  # copied from EID 1 unconditionally (EID 3 lacks them)
ZERO = "{00000000-0000-0000-0000-000000000000}"
GUID = "{6A910B9D-4A9A-5EE0-0C04-000000000400}"

SUMMARY = {}  # filled by the real-data fixture; printed by test_real_data_summary


def eid1(host, guid, **fields):
    event = {"EventCode": "1", "host": host, "ProcessGuid": guid, "Image": r"C:\Windows\System32\cmd.exe",
             "CommandLine": "cmd.exe /c whoami", "ParentImage": r"C:\Windows\explorer.exe",
             "OriginalFileName": "Cmd.Exe", "User": "CORP\\alice"}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


def eid3(host, guid, **fields):
    event = {"EventCode": "3", "host": host, "ProcessGuid": guid, "Image": r"C:\Windows\System32\cmd.exe",
             "DestinationIp": "93.184.216.34", "DestinationPort": "443", "Initiated": "true"}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


def enriched_fields(event):
    return {field: event.get(field) for field in ENRICHED + ("User",)}


def copy_macros(tmp_path, old=None, new=None):
    """A copy of macros.conf, with `old` replaced by `new` in it (which must be there)."""
    with open(MACROS, encoding="utf-8") as handle:
        text = handle.read()
    if old is not None:
        assert text.count(old) == 1, "the test's edit no longer applies to macros.conf: %r" % old
        text = text.replace(old, new)
    path = tmp_path / "macros.conf"
    path.write_text(text, encoding="utf-8")
    return str(path)


def copy_macros_at(path, old, new):
    """A second edit to a copy made by copy_macros()."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    assert text.count(old) == 1, old
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.replace(old, new))
    return path


# ====================================================================== part 1: read from the macro

def test_conf_reader_agrees_with_ksconf():
    from ksconf.conf.parser import PARSECONF_STRICT_NC, parse_conf
    theirs = parse_conf(MACROS, profile=PARSECONF_STRICT_NC)
    ours = enrich.read_conf(MACROS)
    for stanza, keys in theirs.items():
        if keys:
            assert ours.get(stanza) == dict(keys), stanza
    assert enrich.macro_definition(MACROS) == theirs["classifyport_enrich_process"]["definition"]


def test_steps_read_from_the_shipped_macro():
    steps = enrich.load_steps(MACROS)
    fields = ["CommandLine", "ParentImage", "OriginalFileName", "User"]
    assert steps.collected == [(f, "classifyport_" + f) for f in fields]
    assert steps.assignments == [(f, "classifyport_" + f) for f in fields]
    assert steps.by == ["host", "classifyport_guid"]
    assert (steps.source_field, steps.guid_field, steps.code_field) == ("ProcessGuid", "classifyport_guid", "EventCode")
    assert (steps.source_code, steps.kept_code) == (1, 3)
    assert steps.trim_chars == "{} "
    assert steps.removed == ["classifyport_*"]
    for zero in (ZERO, ZERO.strip("{}"), "{" + ZERO.strip("{}"), ZERO.strip("{}") + "}"):
        assert steps.zero_regex.search(zero), zero
    for real in (GUID, GUID.lower(), "{00000000-0000-0000-0000-000000000001}", ZERO + "0"):
        assert not steps.zero_regex.search(real), real
    described = enrich.describe(MACROS)
    assert len(described) == 5
    text = "\n".join(described)
    for word in fields + ["host", "classifyport_guid", "EventCode=1", "EventCode=3", "classifyport_*", '"{} "']:
        assert word in text, word


def test_line_continuations_are_joined(tmp_path):
    path = copy_macros(tmp_path, " | eventstats ", " \\\n    | eventstats ")
    path = copy_macros_at(path, " | where EventCode=3 | ", " \\\n| where EventCode=3 \\\n| ")
    shipped, continued = enrich.load_steps(MACROS), enrich.load_steps(path)
    assert "\n" in continued.definition
    for attribute in ("collected", "assignments", "by", "trim_chars", "removed", "source_code", "kept_code"):
        assert getattr(continued, attribute) == getattr(shipped, attribute), attribute
    assert continued.zero_regex.pattern == shipped.zero_regex.pattern


PAIR = [eid1("WS1", GUID), eid3("WS1", GUID.lower(), User="CORP\\alice"),
        eid3("WS2", GUID, User="CORP\\bob"), eid3("WS1", GUID.strip("{}"), User="CORP\\alice")]


def test_shipped_macro_on_the_pair():
    out = enrich.enrich(PAIR, macros_path=MACROS)
    assert [e.get("ParentImage") for e in out] == [r"C:\Windows\explorer.exe", None, r"C:\Windows\explorer.exe"]
    assert [e.get("CommandLine") for e in out] == ["cmd.exe /c whoami", None, "cmd.exe /c whoami"]


@pytest.mark.parametrize("old, new, check", [
    # ParentImage dropped from the eventstats: the coalesce finds no helper, ParentImage stays absent.
    (" values(eval(if(EventCode=1, ParentImage, null()))) as classifyport_ParentImage", "",
     lambda out: [e.get("ParentImage") for e in out] == [None, None, None]
     and [e.get("CommandLine") for e in out] == ["cmd.exe /c whoami", None, "cmd.exe /c whoami"]),
    # ParentImage dropped from the final eval only: never copied either.
    (", ParentImage=coalesce(ParentImage, mvindex(classifyport_ParentImage, 0))", "",
     lambda out: [e.get("ParentImage") for e in out] == [None, None, None]
     and out[0]["OriginalFileName"] == "Cmd.Exe"),
    # host dropped from the by clause: the GUID now matches on WS2 as well.
    ("by host classifyport_guid", "by classifyport_guid",
     lambda out: [e.get("CommandLine") for e in out] == ["cmd.exe /c whoami"] * 3),
    # braces no longer trimmed: the EID 3 without braces no longer matches the braced EID 1.
    ('trim(ProcessGuid, "{} ")', 'trim(ProcessGuid, " ")',
     lambda out: [e.get("CommandLine") for e in out] == ["cmd.exe /c whoami", None, None]),
    # the zero regex made to match this GUID too: nothing is grouped any more.
    ('"^[{} ]*(0{8}-0{4}-0{4}-0{4}-0{12})?[}{ ]*$"', '"^[{]?[0-9A-Fa-f]{8}-"',
     lambda out: [e.get("CommandLine") for e in out] == [None, None, None]),
    # another field collected by the eventstats but not assigned: not copied, and its helper removed.
    (" as classifyport_User by", " as classifyport_User values(eval(if(EventCode=1, Hashes, null()))) as "
     "classifyport_Hashes by",
     lambda out: "Hashes" not in out[0] and not any(k.startswith("classifyport_") for e in out for k in e)),
], ids=["ParentImage-not-collected", "ParentImage-not-assigned", "by-guid-only", "braces-not-trimmed",
        "zero-regex-widened", "Hashes-collected-only"])
def test_replay_follows_an_edited_macro(tmp_path, old, new, check):
    path = copy_macros(tmp_path, old, new)
    events = [dict(e) for e in PAIR]
    events[0]["Hashes"] = "SHA256=00"
    out = enrich.enrich(events, macros_path=path)
    assert check(out), out


def test_added_field_is_copied_when_the_macro_says_so(tmp_path):
    path = copy_macros(tmp_path, " as classifyport_User by", " as classifyport_User values(eval(if(EventCode=1, "
                       "Hashes, null()))) as classifyport_Hashes by")
    path = copy_macros_at(path, ", User=coalesce(User, mvindex(classifyport_User, 0))",
                          ", User=coalesce(User, mvindex(classifyport_User, 0)), "
                          "Hashes=coalesce(Hashes, mvindex(classifyport_Hashes, 0))")
    events = [eid1("WS1", GUID, Hashes="SHA256=00"), eid3("WS1", GUID)]
    assert enrich.enrich(events, macros_path=path)[0]["Hashes"] == "SHA256=00"
    assert "Hashes" not in enrich.enrich(events, macros_path=MACROS)[0]


@pytest.mark.parametrize("old, new, stage", [
    ("| eventstats values(", "| stats values(", "2 (eventstats)"),
    ("| eventstats values(eval(if(EventCode=1, CommandLine, null()))) as classifyport_CommandLine",
     "| eventstats latest(CommandLine) as classifyport_CommandLine", "2 (eventstats)"),
    ("values(eval(if(EventCode=1, User, null())))", "values(eval(if(EventCode=3, User, null())))",
     "2 (eventstats)"),
    (" by host classifyport_guid", " by host", "2 (eventstats)"),
    ("| where EventCode=3 ", "", "pipeline stages"),
    ("| where EventCode=3 ", "| join type=left ProcessGuid [search EventCode=1] ", "3 (where)"),
    ("User=coalesce(User, mvindex(classifyport_User, 0))", "User=if(isnull(User), classifyport_User, User)",
     "4 (coalesce)"),
    ("User=coalesce(User, mvindex(classifyport_User, 0))", "User=coalesce(Computer, mvindex(classifyport_User, 0))",
     "4 (coalesce)"),
    ("lower(trim(ProcessGuid", "upper(trim(ProcessGuid", "1 (GUID)"),
    ('match(ProcessGuid, "^[{} ]*(0{8}', 'match(Guid, "^[{} ]*(0{8}', "1 (GUID)"),
    ('0{12})?[}{ ]*$")', '0{12})?[}{ ]*+$")', "possessive quantifier"),
    ("| fields - classifyport_*", "| table *", "5 (fields)"),
    ("[classifyport_enrich_process]", "[classifyport_enrich]", "no [classifyport_enrich_process] stanza"),
    ("definition = eval classifyport_guid", "defn = eval classifyport_guid", "has no definition"),
], ids=["stats", "latest", "eventcode-3-collected", "by-host-only", "no-where", "join", "if-not-coalesce",
        "coalesce-other-field", "upper", "other-guid-field", "possessive-regex", "table", "no-stanza",
        "no-definition"])
def test_macro_of_another_shape_is_a_clear_error(tmp_path, old, new, stage):
    path = copy_macros(tmp_path, old, new)
    with pytest.raises(enrich.MacroShapeError) as raised:
        enrich.enrich(PAIR, macros_path=path)
    message = str(raised.value)
    assert stage in message and "classifyport_enrich" in message, message
    assert isinstance(raised.value, ValueError)


# ====================================================================== part 2: semantics by hand

def test_guid_case_and_braces_do_not_matter():
    events = [eid1("WS1", GUID), eid3("WS1", GUID.lower().strip("{}")), eid3("WS1", " " + GUID.lower() + " "),
              eid1("WS1", "{abcdef01-0000-0000-0000-000000000001}", CommandLine="b.exe"),
              eid3("WS1", "ABCDEF01-0000-0000-0000-000000000001")]
    out = enrich.enrich(events)
    assert [e["CommandLine"] for e in out] == ["cmd.exe /c whoami", "cmd.exe /c whoami", "b.exe"]
    assert [e["ProcessGuid"] for e in out] == [GUID.lower().strip("{}"), " " + GUID.lower() + " ",
                                               "ABCDEF01-0000-0000-0000-000000000001"]  # not rewritten


def test_same_guid_on_another_host_is_not_matched():
    events = [eid1("WS1", GUID), eid3("WS2", GUID), eid3("WS1", GUID), eid3("ws1", GUID)]
    out = enrich.enrich(events)
    assert [e.get("CommandLine") for e in out] == [None, "cmd.exe /c whoami", None]


def test_host_falls_back_to_computer_and_host_wins_over_computer():
    events = [eid1(None, GUID, Computer="WS1.corp"), eid3(None, GUID, Computer="WS1.corp"),
              eid3(None, GUID, Computer="WS2.corp"),
              eid3("WS1.corp", GUID, Computer="OTHER"),  # host present: Computer is ignored
              eid3("OTHER", GUID, Computer="WS1.corp")]
    out = enrich.enrich(events)
    assert [e.get("CommandLine") for e in out] == ["cmd.exe /c whoami", None, "cmd.exe /c whoami", None]
    assert "host" not in out[0] and "host" not in out[1]  # read through Computer, never added


def test_eventid_stands_in_for_eventcode_and_numbers_compare_as_numbers():
    first = eid1("WS1", GUID)
    first["EventID"] = first.pop("EventCode")
    third = eid3("WS1", GUID)
    third["EventID"] = third.pop("EventCode")
    padded = eid3("WS1", GUID, EventCode="03")
    other = eid3("WS1", GUID, EventCode="22")
    out = enrich.enrich([first, third, padded, other])
    assert [e.get("CommandLine") for e in out] == ["cmd.exe /c whoami", "cmd.exe /c whoami"]
    assert "EventCode" not in out[0]


@pytest.mark.parametrize("zero", [ZERO, ZERO.strip("{}"), "{" + ZERO.strip("{}"), ZERO.strip("{}") + "}"])
def test_all_zero_guid_is_never_matched(zero):
    events = [eid1("WS1", zero), eid3("WS1", zero, Image="<unknown process>"), eid3("WS1", ZERO),
              eid1("WS1", ZERO, CommandLine="other.exe"), eid3("WS1", zero.strip("{}"))]
    out = enrich.enrich(events)
    assert len(out) == 3
    for event in out:
        assert all(event.get(f) is None for f in ENRICHED), event
        assert "User" not in event


def test_missing_guid_is_never_matched():
    events = [eid1("WS1", None), eid3("WS1", None), eid1("WS1", GUID), eid3("WS1", None, Image="x.exe")]
    out = enrich.enrich(events)
    assert [enriched_fields(e) for e in out] == [dict.fromkeys(ENRICHED + ("User",))] * 2


def test_existing_user_is_kept_and_a_missing_one_is_filled():
    events = [eid1("WS1", GUID, User="CORP\\alice"), eid3("WS1", GUID, User="NT AUTHORITY\\SYSTEM"),
              eid3("WS1", GUID), eid3("WS1", GUID, User="")]
    out = enrich.enrich(events)
    assert [e["User"] for e in out] == ["NT AUTHORITY\\SYSTEM", "CORP\\alice", ""]


def test_present_but_empty_field_is_kept_absent_field_is_filled():
    events = [eid1("WS1", GUID), eid3("WS1", GUID, CommandLine=""), eid3("WS1", GUID, CommandLine="given")]
    out = enrich.enrich(events)
    assert [e["CommandLine"] for e in out] == ["", "given"]
    assert [e["ParentImage"] for e in out] == [r"C:\Windows\explorer.exe"] * 2


def test_process_started_before_the_window_stays_unenriched():
    before = eid3("WS1", GUID, User="CORP\\alice", RuleName="-")
    out = enrich.enrich([before, eid1("WS1", "{11111111-2222-3333-4444-555555555555}")])
    assert out == [before]
    assert out[0] is not before


def test_eid1_without_a_field_gives_nothing_for_it():
    out = enrich.enrich([eid1("WS1", GUID, OriginalFileName=None), eid3("WS1", GUID)])
    assert "OriginalFileName" not in out[0] and out[0]["CommandLine"] == "cmd.exe /c whoami"


def test_values_are_distinct_and_sorted_the_first_is_taken():
    events = [eid1("WS1", GUID, CommandLine="b.exe", ParentImage="p2", User="CORP\\zed"),
              eid1("WS1", GUID.lower(), CommandLine="a.exe", ParentImage="p2", User="CORP\\amy"),
              eid1("WS1", GUID, CommandLine="B.exe", ParentImage="p1", User="CORP\\zed"),
              eid3("WS1", GUID)]
    out = enrich.enrich(events)
    # code point order: "B" < "a"; duplicates count once
    assert (out[0]["CommandLine"], out[0]["ParentImage"], out[0]["User"]) == ("B.exe", "p1", "CORP\\amy")


def test_only_eid3_returned_in_order_other_fields_unchanged_inputs_untouched():
    events = [eid3("WS9", GUID, _id="x0"), eid1("WS1", GUID, _id="y"), eid3("WS1", GUID, _id="x1",
              RuleName="-", DestinationPortName="https"), eid1("WS2", ZERO), eid3("WS2", ZERO, _id="x2")]
    snapshot = json.loads(json.dumps(events))
    out = enrich.enrich(events)
    assert events == snapshot
    assert [e["_id"] for e in out] == ["x0", "x1", "x2"]
    assert all(e["EventCode"] == "3" for e in out)
    for before, after in zip([events[0], events[2], events[4]], out):
        added = {k: v for k, v in after.items() if k not in before}
        assert {k: after[k] for k in before} == before  # nothing lost or changed
        assert set(added) <= set(ENRICHED + ("User",))
    assert set(out[1]) - set(events[2]) == set(ENRICHED + ("User",))
    assert out[0] == events[0] and out[2] == events[4]  # no EID 1 on WS9; all-zero GUID on WS2
    assert not any(k.startswith("classifyport_") for e in out for k in e)


def test_helper_fields_are_removed_even_when_the_input_had_them():
    out = enrich.enrich([eid1("WS1", GUID), eid3("WS1", GUID, classifyport_guid="stale"),
                         eid3("WS1", ZERO, classifyport_note="x")])
    assert not any(k.startswith("classifyport_") for e in out for k in e)
    assert out[0]["CommandLine"] == "cmd.exe /c whoami"


def test_command_line_prints_steps_and_enriches(python, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in PAIR) + "\n", encoding="utf-8")
    script = os.path.join(ROOT, "tools", "enrich.py")
    steps = subprocess.run([python, script], capture_output=True, text=True, timeout=60)
    assert steps.returncode == 0, steps.stderr
    assert steps.stdout.count("\n") == 5 and "classifyport_guid" in steps.stdout
    run = subprocess.run([python, script, str(events)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert [json.loads(line).get("CommandLine") for line in run.stdout.splitlines()] == \
        [e.get("CommandLine") for e in enrich.enrich(PAIR)]
    bad = subprocess.run([python, script, "--macros", copy_macros(tmp_path, "| eventstats", "| stats")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "eventstats" in bad.stderr


# ====================================================================== part 3: real EID 1 / EID 3 pairs

# MANIFEST.md, per source: "EID 3 rows with an EID 1 sibling".
MANIFEST_SIBLINGS = {
    "otrf_security_datasets": ("OTRF/Security-Datasets", 274),
    "splunk_attack_data": ("splunk/attack_data", 59),
    "omerbenamram_evtx": ("omerbenamram/evtx", 2),
    "mdecrevoisier_evtx_to_mitre_attack": ("mdecrevoisier/EVTX-to-MITRE-Attack", 0),
}


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _key(event):
    """(Computer, GUID as a number), or None for the all-zero GUID; independent of enrich."""
    value = uuid.UUID(event["ProcessGuid"]).int  # accepts braces and either case
    return None if value == 0 else (event["Computer"], value)


def _expected(eid1_events, eid3_events):
    """The EID 3 events as the macro should leave them, computed from first principles."""
    siblings = collections.defaultdict(list)
    for event in eid1_events:
        if _key(event) is not None:
            siblings[_key(event)].append(event)
    assert all(len(found) == 1 for found in siblings.values()), "one EID 1 per process expected in the corpus"
    expected, matched = [], []
    for event in eid3_events:
        want = dict(event)
        sibling = siblings.get(_key(event), [None])[0] if _key(event) is not None else None
        if sibling is not None:
            for field in ENRICHED:
                if field in sibling and field not in event:
                    want[field] = sibling[field]
            if "User" not in event and "User" in sibling:
                want["User"] = sibling["User"]
        expected.append(want)
        matched.append(sibling is not None)
    return expected, matched


@pytest.fixture(scope="module")
def corpus():
    folder = shared_path("data", "sysmon")
    sources = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.eid3.jsonl"))):
        stem = os.path.basename(path)[:-len(".eid3.jsonl")]
        eid3_events, eid1_events = _load(path), _load(os.path.join(folder, stem + ".eid1.jsonl"))
        assert {e["EventID"] for e in eid3_events} <= {"3"} and {e["EventID"] for e in eid1_events} <= {"1"}
        for event in eid1_events + eid3_events:
            event["host"] = event["Computer"]  # Splunk's host, as the brief for this corpus says
        sources[stem] = (eid1_events, eid3_events)
    assert set(sources) == set(MANIFEST_SIBLINGS)
    with open(os.path.join(folder, "MANIFEST.md"), encoding="utf-8") as handle:
        manifest = handle.read()
    return sources, manifest


def _manifest_siblings(manifest, title):
    section = manifest.split("\n### " + title + "\n", 1)[1].split("\n### ", 1)[0]
    return int(re.search(r"EID 3 rows with an EID 1 sibling: ([0-9]+)", section).group(1))


@pytest.mark.parametrize("stem", sorted(MANIFEST_SIBLINGS))
def test_real_pairs_are_enriched_as_expected(corpus, stem):
    sources, manifest = corpus
    eid1_events, eid3_events = sources[stem]
    title, brief_count = MANIFEST_SIBLINGS[stem]
    assert _manifest_siblings(manifest, title) == brief_count

    events = eid1_events + eid3_events
    snapshot = json.dumps(events, sort_keys=True)
    out = enrich.enrich(events)
    assert json.dumps(events, sort_keys=True) == snapshot
    assert len(out) == len(eid3_events)

    expected, matched = _expected(eid1_events, eid3_events)
    for got, want in zip(out, expected):
        assert got == want, got["_id"]
    enriched = sum(1 for got in out if "CommandLine" in got)
    assert enriched == sum(matched) == brief_count

    zero = [got for got, event in zip(out, eid3_events) if uuid.UUID(event["ProcessGuid"]).int == 0]
    assert not any(f in got for got in zero for f in ENRICHED)
    SUMMARY[stem] = {
        "eid3_in": len(eid3_events), "eid3_out": len(out), "eid1": len(eid1_events), "enriched": enriched,
        "with_CommandLine": enriched, "with_ParentImage": sum(1 for got in out if "ParentImage" in got),
        "with_OriginalFileName": sum(1 for got in out if "OriginalFileName" in got),
        "all_zero_guid_eid3": len(zero), "guid_forms": dict(collections.Counter(
            ("braces" if e["ProcessGuid"].startswith("{") else "bare")
            + ("/upper" if e["ProcessGuid"] != e["ProcessGuid"].lower() else "/lower") for e in events)),
    }


def test_real_all_zero_guids_are_present_and_never_enriched(corpus):
    sources, _ = corpus
    eid3_events = [e for _, third in sources.values() for e in third]
    zero = [e for e in eid3_events if uuid.UUID(e["ProcessGuid"]).int == 0]
    assert zero, "the corpus has <unknown process> events with the all-zero ProcessGuid"
    assert {e["Image"] for e in zero} <= {"<unknown process>", "&lt;unknown process&gt;"}
    out = enrich.enrich(zero + [e for first, _ in sources.values() for e in first])
    assert out == zero
    SUMMARY["all_zero_guid_eid3_total"] = len(zero)


def test_real_sources_pooled_match_nothing_across_sources(corpus):
    """All four sources in one window: GUID case differs between sources, yet nothing matches across them."""
    sources, _ = corpus
    first = [e for one, _ in sources.values() for e in one]
    third = [e for _, three in sources.values() for e in three]
    out = enrich.enrich(third + first)
    expected, matched = _expected(first, third)
    assert out == expected
    assert len(out) == len(third) == 1781
    assert sum(matched) == sum(count for _, count in MANIFEST_SIBLINGS.values())
    SUMMARY["pooled"] = {"eid3": len(out), "enriched": sum(matched)}


def test_real_host_fallback_to_computer_gives_the_same(corpus):
    sources, _ = corpus
    events = [dict(e) for one, three in sources.values() for e in one + three]
    with_host = enrich.enrich(events)
    for event in events:
        del event["host"]
    without_host = enrich.enrich(events)
    assert [dict(e, host=e["Computer"]) for e in without_host] == with_host


def test_real_one_window_per_origin_file(corpus):
    """Each recording as its own search window: fewer EID 3 find their EID 1 (the look-back effect)."""
    sources, _ = corpus
    first, third = sources["otrf_security_datasets"]
    windows = collections.defaultdict(lambda: ([], []))
    for event in first:
        windows[event["_src_path"]][0].append(event)
    for event in third:
        windows[event["_src_path"]][1].append(event)
    enriched = 0
    for one, three in windows.values():
        out = enrich.enrich(one + three)
        expected, matched = _expected(one, three)
        assert out == expected
        enriched += sum(matched)
    assert enriched < 274
    SUMMARY["otrf_per_origin_file_window_enriched"] = enriched


def test_real_data_summary(corpus):
    """Prints the counts (pytest -rA or -s); runs last in this file."""
    missing = [key for key in list(MANIFEST_SIBLINGS) + ["pooled", "all_zero_guid_eid3_total"] if key not in SUMMARY]
    if missing:
        pytest.skip("the per-source tests did not run: %s" % ", ".join(missing))
    per_source = [SUMMARY[stem] for stem in MANIFEST_SIBLINGS]
    assert sum(item["enriched"] for item in per_source) == SUMMARY["pooled"]["enriched"]
    assert sum(item["eid3_out"] for item in per_source) == SUMMARY["pooled"]["eid3"]
    assert sum(item["all_zero_guid_eid3"] for item in per_source) == SUMMARY["all_zero_guid_eid3_total"]
    print("\nenrichment on ../shared/data/sysmon:")
    for key in sorted(SUMMARY):
        print("  %s: %s" % (key, json.dumps(SUMMARY[key], sort_keys=True)))
