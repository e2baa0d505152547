"""`| classifyport` over Search Command Protocol v2, driven as splunkd drives it.

The command runs as a subprocess (bin/classifyport.py) fed getinfo, several
execute chunks and an empty final chunk; its stdout is parsed strictly
(scpv2.check_conversation). Expected values come from the command contract
(issue 2), written per case, never from a run of the command.
"""
import random
import sys

import pytest

import scpv2

# The output fields the contract names, in no particular order.
OUTPUT_FIELDS = ("ImageBasename", "DestPort", "IsScriptInterpreter", "IsLOLBin", "IsUnusualSystem",
                 "IsInternal", "SuspicionLabel", "Allowlisted", "AllowlistReason",
                 "MatchedOn", "mitre_technique_id", "risk_score")
FLAGS = {"ScriptInterpreter": ("1", "0", "0"), "LOLBin": ("0", "1", "0"),
         "UnusualSystemProcess": ("0", "0", "1"), None: ("0", "0", "0")}
TRACEBACK_MARKERS = ("Traceback", 'File "', ".py\", line", "Error at \"")


def converse(args, chunks, python=None, **extra):
    """Run the command like splunkd; fail the test if the reply stream is not clean SCP v2."""
    result = scpv2.run_strict(args, chunks, python=python or sys.executable, **extra)
    for marker in TRACEBACK_MARKERS:
        assert marker.encode() not in result.stdout, result.stdout[-2000:]
        assert marker.encode() not in result.stderr, result.stderr[-2000:]
    return result


def normal(value):
    """A field value as it must come back: a one-item list travels as its single value."""
    if isinstance(value, (list, tuple)):
        return value[0] if len(value) == 1 else list(value)
    return "" if value is None else value


def expected_input_fields(record, chunk):
    """What splunkd would have sent for `record`: every field of its chunk, empty when the record lacks it."""
    names = []
    for other in chunk:
        for name in other:
            if name not in names:
                names.append(name)
    return {name: normal(record.get(name, "")) for name in names}


def assert_passed_through(chunks, replies):
    """Each reply holds its request's records, in order, every input field unchanged, plus exactly OUTPUT_FIELDS."""
    assert len(replies) == len(chunks) + 1
    for number, (chunk, (_, records)) in enumerate(zip(chunks, replies)):
        assert len(records) == len(chunk), "chunk %d: %d records in, %d out" % (number, len(chunk), len(records))
        for index, (sent, got) in enumerate(zip(chunk, records)):
            want = expected_input_fields(sent, chunk)
            got_inputs = {name: value for name, value in got.items() if name in want}
            assert got_inputs == want, "chunk %d record %d altered" % (number, index)
            added = [name for name in got if name not in want]
            assert sorted(added) == sorted(OUTPUT_FIELDS), "chunk %d record %d fields %r" % (number, index, added)
            for name in OUTPUT_FIELDS:
                # mitre_technique_id is multivalue by design; every other output field has one value.
                if name == "mitre_technique_id" and isinstance(got[name], list):
                    assert len(got[name]) > 1 and all(isinstance(v, str) and v for v in got[name]), got[name]
                else:
                    assert isinstance(got[name], str), (name, got[name])
    assert replies[-1][1] == []


def sysmon(image, port="443", dest="8.8.8.8", initiated="true", **more):
    record = {"Image": image, "DestinationPort": port, "DestinationIp": dest, "Initiated": initiated}
    record.update(more)
    return record


# --------------------------------------------------------------------------- protocol shape

SHAPE_CHUNKS = [
    [sysmon(r"C:\Windows\System32\cmd.exe", _serial="0"),
     sysmon(r"C:\Program Files\Google\Chrome\Application\chrome.exe", _serial="1"),
     sysmon(r"C:\Windows\System32\rundll32.exe", port="80", _serial="2")],
    [sysmon(r"C:\Windows\System32\notepad.exe", port="3389", dest="10.1.1.1", _serial="3")],
    [sysmon(r"C:\Windows\explorer.exe", _serial=str(n)) for n in range(4, 8)],
]


def test_protocol_shape(python):
    """getinfo -> {"type":"streaming"}, one reply per execute chunk, finished mirrored, exit 0."""
    result = converse(["mode=annotate"], SHAPE_CHUNKS, python=python)
    assert result.returncode == 0, result.stderr
    assert result.chunks[0] == ({"type": "streaming"}, "")
    assert [meta for meta, _ in result.chunks[1:]] == [{"finished": False}] * 3 + [{"finished": True}]
    assert result.chunks[-1][1] == ""
    assert_passed_through(SHAPE_CHUNKS, result.replies)
    assert [r["_serial"] for r in result.records] == [str(n) for n in range(8)]
    assert result.stderr == b""


def test_filter_mode_answers_every_chunk_even_when_empty(python):
    """Filter mode: chunks with nothing labelled still get their own (empty) reply."""
    chunks = [
        [sysmon(r"C:\Windows\explorer.exe", _serial="0")],
        [sysmon(r"C:\Windows\System32\cmd.exe", _serial="1"), sysmon("chrome.exe", _serial="2")],
        [],
        [sysmon("svchost.exe", _serial="3")],
    ]
    result = converse([], chunks, python=python)
    assert result.returncode == 0
    assert result.chunks[0] == ({"type": "streaming"}, "")
    assert [meta for meta, _ in result.chunks[1:]] == [{"finished": False}] * 4 + [{"finished": True}]
    assert [len(records) for _, records in result.replies] == [0, 1, 0, 0, 0]
    assert [body == "" for _, body in result.chunks[1:]] == [True, False, True, True, True]
    assert result.records[0]["_serial"] == "1"


# --------------------------------------------------------------------------- nothing lost

MV_DOLLARS = ["$", "a$b", "", "$$;$", "ends with $", "$;$"]
TRICKY = [
    {"_serial": "0", "_chunked_idx": "0", "_time": "1700000000.123",
     "_raw": 'line one\r\nline "two", with commas,\nline three\rend', "Image": r"C:\Windows\System32\cmd.exe",
     "DestinationPort": "443", "DestinationIp": "8.8.8.8", "tags": ["alpha", "beta", "gamma"],
     "mv_dollar": MV_DOLLARS, "emoji": "🦄🏳️‍🌈 👩🏽‍💻", "rtl": "\u202bשלום مرحبا\u202c", "cjk": "中文 日本語 한국어",
     "looks_mv": "$a$;$b$", "empty": "", "spaces": "  padded  ", "quote": '"', "comma": ",",
     "User": "CORP\\Ünïcødé", "host": "ws01"},
    {"_serial": "1", "_chunked_idx": "1", "_time": "1700000001",
     "_raw": "<Event>\n  <Data Name='Image'>C:\\x\\y.exe</Data>\n</Event>\n", "Image": "PowerShell.EXE",
     "DestinationPort": "0080", "DestinationIp": "0:0:0:0:0:0:0:1", "tags": ["single"],
     "mv_dollar": ["", ""], "emoji": "", "rtl": "\u200fRLM", "cjk": "𠜎𠜱 (astral CJK)",
     "looks_mv": "$$", "empty": "", "spaces": "\t", "quote": '""', "comma": ",,",
     "User": "", "host": ""},
    {"_serial": "2", "_chunked_idx": "2", "_time": "1700000002",
     "_raw": "x" * 200000, "Image": "notepad.exe", "DestinationPort": "3389", "DestinationIp": "::ffff:10.1.2.3",
     "tags": ["a,b", 'c"d', "e\nf", "g\r\nh"], "mv_dollar": ["__mv_x", "$__mv_y$"], "emoji": "\U0001F600",
     "rtl": "", "cjk": "", "looks_mv": "__mv_looks_mv", "empty": "", "spaces": " ", "quote": "'", "comma": "a,b,c",
     "User": "NT AUTHORITY\\SYSTEM", "host": "web01"},
]
# A second chunk with other fields: each chunk's CSV carries its own header.
TRICKY_OTHER = [
    {"_serial": "3", "_raw": "", "process_name": "x", "__weird name__": "v", "Ünïcødé_field": "ü",
     "field with space": "a b", "0digits": "0"},
    {"_serial": "4", "_raw": "\n", "process_name": ["", "y"], "__weird name__": "", "Ünïcødé_field": "",
     "field with space": "", "0digits": "00"},
]


def test_annotate_returns_every_record_unchanged(python):
    """mode=annotate: every record once, in order, every input field and value unchanged, 9 fields added."""
    chunks = [TRICKY, TRICKY_OTHER, [dict(TRICKY[0], _serial="5")]]
    result = converse(["mode=annotate"], chunks, python=python)
    assert result.returncode == 0
    assert_passed_through(chunks, result.replies)
    assert [r["_serial"] for r in result.records] == ["0", "1", "2", "3", "4", "5"]
    # The spot checks that matter most, stated directly.
    first, second, third = result.records[:3]
    assert first["_raw"] == 'line one\r\nline "two", with commas,\nline three\rend'
    assert first["mv_dollar"] == MV_DOLLARS
    assert first["looks_mv"] == "$a$;$b$"
    assert second["mv_dollar"] == ["", ""]
    assert third["_raw"] == "x" * 200000
    assert third["tags"] == ["a,b", 'c"d', "e\nf", "g\r\nh"]


def test_annotate_many_records_keeps_order_and_count():
    chunks = [[sysmon("cmd.exe" if n % 7 == 0 else "chrome.exe", _serial=str(base + n), n=str(n))
               for n in range(size)] for base, size in ((0, 1500), (1500, 1), (1501, 2500))]
    result = converse(["mode=annotate"], chunks)
    assert result.returncode == 0
    assert [len(records) for _, records in result.replies] == [1500, 1, 2500, 0]
    assert [r["_serial"] for r in result.records] == [str(n) for n in range(4001)]


def test_chunk_larger_than_maxresultrows_is_answered_in_one_reply():
    """The SDK must not split or drop records when a chunk exceeds searchinfo.maxresultrows."""
    chunk = [sysmon(r"C:\Windows\System32\cmd.exe", _serial=str(n)) for n in range(12)]
    result = converse([], [chunk, chunk[:2]], maxresultrows=5)
    assert result.returncode == 0
    assert [len(records) for _, records in result.replies] == [12, 2, 0]


def test_annotate_output_fed_back_is_unchanged():
    """`| classifyport mode=annotate | classifyport mode=annotate`: stale output fields are recomputed, not kept."""
    first = converse(["mode=annotate"], [TRICKY])
    stale = [dict(record) for record in first.records]
    stale[1]["SuspicionLabel"] = "LOLBin"        # wrong label from an earlier search
    stale[1]["Allowlisted"] = "1"
    stale[2]["IsInternal"] = "0"
    stale[2]["DestPort"] = "99999"
    again = converse(["mode=annotate"], [stale])
    assert again.records == first.records


def test_stale_label_on_input_does_not_make_filter_emit():
    chunk = [sysmon("chrome.exe", SuspicionLabel="ScriptInterpreter", IsScriptInterpreter="1", _serial="0"),
             sysmon("cmd.exe", SuspicionLabel="", _serial="1")]
    result = converse([], [chunk])
    assert [(r["_serial"], r["SuspicionLabel"]) for r in result.records] == [("1", "ScriptInterpreter")]


@pytest.mark.parametrize("seed", [1, 2])
def test_large_bodies_read_in_pieces_lose_nothing(seed, python):
    """The command reads a chunk body in 64 KiB pieces, each cut after a line end outside quotes.
    Cells that run across a piece's end (quoted line ends, doubled quotes, multi-byte characters)
    and records longer than a piece come back unchanged, each labelled as on its own."""
    rng = random.Random(seed)
    alphabet = ["a", "b", ",", '"', '""', "\n", "\r\n", "\r", "\u00e9", "\u20ac", "\U0001f600", "$", ";"]
    images = {r"C:\Windows\System32\cmd.exe": "ScriptInterpreter", r"C:\Program Files\x\chrome.exe": "",
              'C:\\q"uote\\rundll32.exe': "LOLBin", "C:\\new\nline\\certutil.exe": "LOLBin"}
    chunk = []
    while sum(len(record["_raw"]) for record in chunk) < 6 * 65536:
        raw = "".join(rng.choice(alphabet) for _ in range(rng.choice([1, 90, 1500, 30000, 140000])))
        chunk.append(sysmon(rng.choice(sorted(images)), _serial=str(len(chunk)), _raw=raw))
    assert len(scpv2.encode_records(chunk).encode("utf-8")) > 6 * 65536
    annotated = converse(["mode=annotate"], [chunk, chunk[:3]], python=python)
    assert annotated.returncode == 0
    assert_passed_through([chunk, chunk[:3]], annotated.replies)
    labels = [images[record["Image"]] for record in chunk]
    assert [record["SuspicionLabel"] for record in annotated.records] == labels + labels[:3]
    filtered = converse([], [chunk], python=python)
    assert [record["_serial"] for record in filtered.records] == [str(n) for n, label in enumerate(labels) if label]


@pytest.mark.parametrize("mode", ["filter", "annotate"])
def test_filter_returns_exactly_the_records_to_label(mode, python):
    """Default filter mode returns exactly, in order, the input records the contract says to label."""
    # (record, label the contract gives it)
    cases = [
        (sysmon(r"C:\Windows\System32\cmd.exe"), "ScriptInterpreter"),
        (sysmon(r"C:\Windows\System32\cmd.exe", initiated="false"), ""),   # inbound
        (sysmon(r"C:\Tools\xcmd.exe"), ""),
        (sysmon(r"C:\Windows\System32\rundll32.exe", port="80"), "LOLBin"),
        (sysmon(r"C:\Windows\System32\rundll32.exe", port="8080"), ""),    # port not listed
        (sysmon(r"C:\Windows\System32\calc.exe", port="0025"), "UnusualSystemProcess"),
        (sysmon("certutil.exe", port="65536"), ""),                         # not a port
        (sysmon("", port="443"), ""),
        (sysmon("mshta.exe", initiated=""), "ScriptInterpreter"),           # no direction: outbound
        (sysmon("NSLOOKUP.EXE", port="53", dest="10.0.0.53"), "LOLBin"),
    ]
    chunks = [[], [], []]
    for index, (record, label) in enumerate(cases):
        chunks[index % 3].append(dict(record, case=str(index), expect=label))
    args = [] if mode == "filter" else ["mode=annotate"]
    result = converse(args, chunks, python=python)
    assert result.returncode == 0
    if mode == "annotate":
        assert_passed_through(chunks, result.replies)
    expected = [record["case"] for chunk in chunks for record in chunk
                if mode == "annotate" or record["expect"]]
    assert [r["case"] for r in result.records] == expected
    for r in result.records:
        assert r["SuspicionLabel"] == r["expect"], r
        if mode == "filter":
            assert set(r) - {"case", "expect", "Image", "DestinationPort", "DestinationIp", "Initiated"} \
                == set(OUTPUT_FIELDS)


# --------------------------------------------------------------------------- classification cases

def _case(case_id, record, **expected):
    return pytest.param(case_id, record, expected, id=case_id)


IMAGE_CASES = [
    _case("cmd", sysmon(r"C:\Windows\System32\cmd.exe"), ImageBasename="cmd.exe", label="ScriptInterpreter"),
    _case("xcmd-not-cmd", sysmon(r"C:\Tools\xcmd.exe"), ImageBasename="xcmd.exe", label=None),
    _case("cmd-suffix", sysmon(r"C:\Windows\System32\cmd.exe.bak"), ImageBasename="cmd.exe.bak", label=None),
    _case("cmd-no-ext", sysmon(r"C:\Windows\System32\cmd"), ImageBasename="cmd", label=None),
    _case("cmd-dir", sysmon(r"C:\cmd.exe\evil.exe"), ImageBasename="evil.exe", label=None),
    _case("powershell-case", sysmon(r"C:\Windows\System32\WindowsPowerShell\v1.0\PowerShell.EXE"),
          ImageBasename="PowerShell.EXE", label="ScriptInterpreter"),
    _case("slashes", sysmon("C:/Windows/System32/rundll32.exe"), ImageBasename="rundll32.exe", label="LOLBin"),
    _case("mixed-slashes", sysmon(r"C:\Windows/System32\CertUtil.exe"), ImageBasename="CertUtil.exe", label="LOLBin"),
    _case("unix", sysmon("/usr/bin/pwsh.exe"), ImageBasename="pwsh.exe", label="ScriptInterpreter"),
    _case("long-path", sysmon(r"\\?\C:\Windows\notepad.exe"), ImageBasename="notepad.exe",
          label="UnusualSystemProcess"),
    _case("bare-name", sysmon("SnippingTool.exe"), ImageBasename="SnippingTool.exe", label="UnusualSystemProcess"),
    _case("unicode-dir", sysmon("C:\\Users\\Ünï 用户\\mshta.exe"), ImageBasename="mshta.exe",
          label="ScriptInterpreter"),
    _case("nslookup", sysmon(r"C:\Windows\System32\nslookup.exe", port="53"), ImageBasename="nslookup.exe",
          label="LOLBin"),
    _case("lolbas", sysmon(r"C:\Windows\System32\certreq.exe"), ImageBasename="certreq.exe", label="LOLBin"),
    _case("system", sysmon("System"), ImageBasename="System", label=None),
    _case("unknown", sysmon("<unknown process>"), ImageBasename="<unknown process>", label=None),
    _case("unknown-escaped", sysmon("&lt;unknown process&gt;"), ImageBasename="&lt;unknown process&gt;", label=None),
    _case("trailing-sep", sysmon("C:\\Windows\\System32\\"), ImageBasename="", label=None),
]

def _port_case(case_id, port, dest_port, labelled):
    """cmd.exe (a ScriptInterpreter) to `port`: DestPort is `dest_port`; labelled only on a listed port."""
    return _case(case_id, sysmon("cmd.exe", port=port), DestPort=dest_port,
                 label="ScriptInterpreter" if labelled else None, flags="ScriptInterpreter")


PORT_CASES = [
    _port_case("p443", "443", "443", True),
    _port_case("p0443", "0443", "443", True),
    _port_case("p00080", "00080", "80", True),
    _port_case("p3389", "3389", "3389", True),
    _port_case("p0", "0", "0", False),
    _port_case("p8080", "8080", "8080", False),
    _port_case("p65535", "65535", "65535", False),
    _port_case("p65536", "65536", "", False),
    _port_case("p65979", "65979", "", False),                      # 65979 % 65536 == 443
    _port_case("p-huge", "99999999999999999999443", "", False),
    _port_case("p-neg", "-443", "", False),
    _port_case("p-plus", "+443", "", False),
    _port_case("p-dec", "443.0", "", False),
    _port_case("p-exp", "4e2", "", False),
    _port_case("p-name", "https", "", False),
    _port_case("p-dash", "-", "", False),
    _port_case("p-arabic", "٤٤٣", "", False),
    _port_case("p-fullwidth", "４４３", "", False),
    _port_case("p-empty", "", "", False),
]

DIRECTION_CASES = [
    _case("outbound", sysmon("cmd.exe", initiated="true"), label="ScriptInterpreter"),
    _case("inbound", sysmon("cmd.exe", initiated="false"), label=None, flags="ScriptInterpreter"),
    _case("no-direction", sysmon("cmd.exe", initiated=""), label="ScriptInterpreter"),
    _case("inbound-flags-kept", sysmon("rundll32.exe", initiated="false"), label=None, flags="LOLBin"),
]

INTERNAL_CASES = [
    _case(dest or "empty", sysmon("chrome.exe", dest=dest), IsInternal=internal)
    for dest, internal in [
        ("10.1.2.3", "1"), ("10.255.255.255", "1"), ("11.0.0.1", "0"),
        ("172.16.0.1", "1"), ("172.31.255.254", "1"), ("172.15.255.255", "0"), ("172.32.0.1", "0"),
        ("172.217.16.142", "0"), ("172.217.3.110", "0"),
        ("192.168.1.10", "1"), ("192.169.0.1", "0"), ("127.0.0.1", "1"), ("169.254.10.20", "1"),
        ("100.64.0.1", "1"), ("100.127.255.255", "1"), ("100.128.0.1", "0"),
        ("8.8.8.8", "0"), ("0:0:0:0:0:0:0:1", "1"), ("::1", "1"),
        ("fe80:0:0:0:9d2b:5c5:1d9:8f2a", "1"), ("fe80::1", "1"), ("fd12:3456:789a:1::1", "1"),
        ("::ffff:10.1.2.3", "1"), ("0:0:0:0:0:ffff:a00:1", "1"), ("::ffff:8.8.8.8", "0"),
        ("0:0:0:0:0:ffff:ac10:0001", "1"), ("2001:4860:4860:0:0:0:0:8888", "0"), ("2001:db8::1", "0"),
        ("dc01.corp.local", "0"), ("localhost", "0"), ("", "0"), ("10.0.0.256", "0"), ("-", "0"),
    ]
]

LABEL_CASES = [
    _case("script", sysmon("powershell.exe", port="53"), label="ScriptInterpreter"),
    _case("lolbin", sysmon("regsvr32.exe", port="80", dest="10.0.0.1"), label="LOLBin", IsInternal="1"),
    _case("unusual", sysmon("calc.exe", port="22"), label="UnusualSystemProcess"),
    _case("flags-without-label", sysmon("wordpad.exe", port="8443"), label=None, flags="UnusualSystemProcess"),
    _case("plain", sysmon("svchost.exe", port="443"), label=None),
]

ALL_CASES = IMAGE_CASES + PORT_CASES + DIRECTION_CASES + INTERNAL_CASES + LABEL_CASES


@pytest.fixture(scope="module")
def classified():
    """All classification cases through one annotate conversation (three chunks); {case id: record}."""
    chunks = [[], [], []]
    for index, param in enumerate(ALL_CASES):
        case_id, record, _ = param.values
        chunks[index % 3].append(dict(record, case=case_id))
    result = converse(["mode=annotate"], chunks)
    assert result.returncode == 0
    assert_passed_through(chunks, result.replies)
    ids = [r["case"] for r in result.records]
    assert ids == [record["case"] for chunk in chunks for record in chunk]
    assert len(set(ids)) == len(ids)
    return {r["case"]: r for r in result.records}


@pytest.mark.parametrize("case_id, record, expected", ALL_CASES)
def test_classification(classified, case_id, record, expected):
    got = classified[case_id]
    for field in ("ImageBasename", "DestPort", "IsInternal"):
        if field in expected:
            assert got[field] == expected[field], field
    if "label" in expected:
        label = expected["label"]
        assert got["SuspicionLabel"] == (label or "")
        flags = FLAGS[expected.get("flags", label)]
        assert (got["IsScriptInterpreter"], got["IsLOLBin"], got["IsUnusualSystem"]) == flags
    assert got["Allowlisted"] == "0" and got["AllowlistReason"] == ""
    for name in OUTPUT_FIELDS:
        assert name in got


def test_is_internal_does_not_depend_on_label(classified):
    """IsInternal is set on every record: labelled ones too."""
    assert classified["lolbin"]["IsInternal"] == "1"
    assert classified["lolbin"]["SuspicionLabel"] == "LOLBin"
