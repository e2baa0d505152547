"""Property-based fuzzing of `| classifyport` through the real protocol (hypothesis).

Each hypothesis example is one whole splunkd conversation: getinfo, several execute
chunks of generated events (each chunk with its own schema), the empty final chunk. It
runs through bin/classifyport.py as a subprocess, under one of Splunk's interpreters,
twice at once: in annotate and in filter mode. Batching many events into one
conversation keeps the cost of starting the command (most of a run's time) per example,
not per event. The properties, for every example:

  1. the reply stream is clean SCP v2 (scpv2.check_conversation), exit status 0, no
     ERROR and nothing on stderr;
  2. annotate returns every record once, in order, with every input field and value
     unchanged as splunkd decodes the reply (a one-value multivalue equals the value);
  3. every record's output fields are what the pure classification function
     (portclassify Classifier.process on dict records) gives, and agree with this
     file's own oracle of the contract (basename, port parsing, label conditions);
  4. filter returns exactly the records Classifier.process labels, in order: the
     labelled records of the annotate run;
  5. the end-of-search warnings name each missing field with the pure function's count.

What splunkd sends, as modelled here (scpv2.encode_records): CSV with every plain column
and then a __mv_ column per field; a field a record lacks is an empty cell; a multivalue
field of 2+ values is its values joined by newlines plus `$a$;$b$` (a one-value list
travels as its value, an empty list as an empty cell). Field names are any non-empty
text not starting with `__mv_` (splunkd's own prefix). Lone surrogates (U+D800-DFFF)
cannot travel: splunkd holds and sends UTF-8, which has no encoding for them, so a lone
surrogate in source data reaches the search either as JSON escape text (`\\ud83d`, six
ASCII characters, left in _raw) or as U+FFFD after index-time transcoding of a UTF-16
source; both forms are generated. Their raw CESU/WTF-8 bytes (ED A0 80) are invalid
UTF-8 and are a protocol fault (tests/test_protocol_faults.py).

Budget: CLASSIFYPORT_FUZZ=bounded (default, `make test`): a fixed, derandomized set of
examples, the same every run; CLASSIFYPORT_FUZZ=long (`make fuzz`): random examples,
CLASSIFYPORT_FUZZ_EXAMPLES of them (default 1000 per test), failures kept in
.hypothesis/ and replayed first. Failing examples found are kept in fuzz_regressions.py.
"""
import functools
import os
import random
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import fuzz_regressions
import scpv2
from conftest import ROOT, splunk_interpreters
from portclassify.classifier import OUTPUT_FIELDS, Classifier, Settings

FUZZ = os.environ.get("CLASSIFYPORT_FUZZ", "bounded")
if FUZZ not in ("bounded", "long"):
    raise ValueError("CLASSIFYPORT_FUZZ must be bounded or long, not %r" % FUZZ)
LONG = FUZZ == "long"
LONG_EXAMPLES = int(os.environ.get("CLASSIFYPORT_FUZZ_EXAMPLES", "1000"))
_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
           HealthCheck.filter_too_much]


def budget(bounded_examples, long_examples=None):
    """The hypothesis settings of one test under the selected budget."""
    if LONG:
        return settings(max_examples=long_examples or LONG_EXAMPLES, deadline=None, suppress_health_check=_CHECKS,
                        print_blob=True)
    return settings(max_examples=bounded_examples, deadline=None, suppress_health_check=_CHECKS,
                    derandomize=True, database=None, print_blob=True)


INTERPRETERS = dict((label, path) for label, path in splunk_interpreters() if path)
OPEN_BUGS = set(fuzz_regressions.OPEN_BUGS)
TIMEOUT = 300
CATEGORIES = ("ScriptInterpreter", "LOLBin", "UnusualSystemProcess")
FLAGS = {"ScriptInterpreter": ("1", "0", "0"), "LOLBin": ("0", "1", "0"), "UnusualSystemProcess": ("0", "0", "1")}
DEFAULT_PORTS = {"80", "443", "53", "25", "22", "3389", "135"}     # classifyport_ports.csv, as issue 2 lists it

# The profiles' fields as issue 2 names them (the generator's business: which names make events interesting).
PROFILES = {
    "sysmon": {"image": ("Image",), "original": ("OriginalFileName",), "port": ("DestinationPort",),
               "dest": ("DestinationIp",), "direction": ("Initiated",), "host": ("host", "Computer"),
               "user": ("User",), "inbound": "false"},
    "cim": {"image": ("app", "process_name"), "original": ("original_file_name",), "port": ("dest_port",),
            "dest": ("dest_ip", "dest"), "direction": ("direction",), "host": ("host", "dvc"), "user": ("user",),
            "inbound": "inbound"},
    "mde": {"image": ("InitiatingProcessFileName",), "original": ("InitiatingProcessVersionInfoOriginalFileName",),
            "port": ("RemotePort",), "dest": ("RemoteIP",), "direction": ("ActionType",),
            "host": ("DeviceName", "host"), "user": ("InitiatingProcessAccountName",),
            "inbound": "InboundConnectionAccepted"},
}

# --------------------------------------------------------------------------- text

# Pieces that have broken CSV, multivalue or protocol handling somewhere.
SNIPPETS = [
    '"', '""', ",", ";", "$", "$$", "$;$", "$a$;$b$", "\r", "\n", "\r\n", "\n\r", "\t", " ", "\\", "'", "=",
    "__mv_", "__mv_x", "chunked 1.0,1,1\n", "{}", "\u0085", "\u2028", "\u2029", "\ufeff", "\u00a0", "\x0b", "\x0c",
    "\x1b[0m", "\x7f", "\u200b", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202e", "\u2066",
    "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\u202b\u05e9\u05dc\u05d5\u05dd\u202c",
    "\U0001F984", "\U0001F3F3\ufe0f\u200d\U0001F308", "\U0001F469\U0001F3FD\u200d\U0001F4BB", "\U0001F1FA\U0001F1F8",
    "e\u0301", "\u4e2d\u6587", "\U0002070e", "\u00fc", "\uff14\uff14\uff13", "\u0664\u0664\u0663",
    "\\ud83d", "\\udc00", "\ufffd",                  # lone surrogates as splunkd would carry them (see above)
    "\x00",                                         # dropped under Python 3.9 while its bug is open
]
CHARACTERS = st.characters(blacklist_categories=("Cs",))
TEXT = st.lists(st.one_of(st.sampled_from(SNIPPETS), st.text(CHARACTERS, max_size=6)), max_size=5).map("".join)

# Code point ranges the bulk generator draws from (no surrogates).
_RANGES = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0x9F), (0xA0, 0x24F), (0x0590, 0x06FF), (0x0300, 0x036F),
           (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0xFE00, 0xFFFD), (0x1F300, 0x1FAFF),
           (0x10000, 0x10FFFF)]


def _corpus(seed=20240501, size=1 << 20):
    """About a million characters of mixed text (ASCII mostly, then the snippets and every script above),
    made once; seeded text is a slice of it, so large chunks cost little to generate."""
    rng = random.Random(seed)
    parts, length = [], 0
    while length < size:
        pick = rng.random()
        if pick < 0.55:
            part = chr(rng.randint(0x20, 0x7E)) * rng.choice((1, 1, 1, 7))
        elif pick < 0.75:
            part = rng.choice(SNIPPETS)
        else:
            low, high = rng.choice(_RANGES)
            part = chr(rng.randint(low, high))
            if 0xD800 <= ord(part) <= 0xDFFF:
                part = "\ufffd"
        parts.append(part)
        length += len(part)
    return "".join(parts)


CORPUS = _corpus()


def bulk_text(rng, length):
    """`length` characters of the corpus from a random place."""
    start = rng.randrange(len(CORPUS) - length) if length < len(CORPUS) else 0
    return CORPUS[start:start + length]


BIG_SIZES = st.one_of(st.integers(0, 4096), st.integers(100000, 1 << 20), st.just(1 << 20))


def big_value(seed, size):
    """A value of at most `size` UTF-8 bytes (up to 1 MB): a generated piece repeated, cut on a character."""
    piece = bulk_text(random.Random(seed), 997)
    text = piece * (size // max(1, len(piece.encode("utf-8"))) + 1)
    return text.encode("utf-8")[:size].decode("utf-8", "ignore")


# --------------------------------------------------------------------------- events

IMAGES = [r"C:\Windows\System32\cmd.exe", "powershell.exe", r"C:\x\PowerShell.EXE", "C:/tools/certutil.exe",
          r"C:\Windows\System32\rundll32.exe", "nslookup.exe", "NOTEPAD.EXE", "calc.exe", r"C:\a\chrome.exe",
          "xcmd.exe", "cmd.exe.bak", "cmd", "", "<unknown process>", "System", r"\\?\C:\Windows\notepad.exe",
          "C:\\Users\\\u00dcn\u00ef \u7528\u6237\\mshta.exe", "/usr/bin/pwsh.exe", "C:\\Windows\\System32\\",
          "cmd.exe\u200b", " cmd.exe", "c\u0301md.exe", "\u202ecmd.exe", r"C:\cmd.exe\evil.exe", "certreq.exe"]
PORTS = ["443", "80", "0053", "53", "3389", "22", "25", "135", "8080", "0", "", "-", "99999", "65536", "65979",
         " 22 ", "\u0664\u0664\u0663", "\uff14\uff14\uff13", "+443", "443.0", "4e2", "https", "00000000000443"]
DESTS = ["10.1.2.3", "8.8.8.8", "0:0:0:0:0:0:0:1", "::ffff:192.168.1.1", "::ffff:8.8.8.8", "", "dc01.corp.local",
         "fe80::1%12", "[::1]", "172.16.0.1", "172.32.0.1", "100.64.0.1", "999.1.1.1", "fd12::1", "-", "10.0.0.256"]
DIRECTIONS = {"sysmon": ["true", "false", "False", " false ", "", "FALSE", "0"],
              "cim": ["outbound", "inbound", "Inbound", "", " inbound"],
              "mde": ["ConnectionSuccess", "InboundConnectionAccepted", "inboundconnectionaccepted", ""]}
OUTPUT_NAMES = list(OUTPUT_FIELDS)
SPLUNK_NAMES = ["_raw", "_time", "_cd", "_si", "_bkt", "_indextime", "_chunked_idx", "_serial", "host", "source",
                "sourcetype", "index", "splunk_server", "linecount", "punct", "eventtype", "tag", "EventCode",
                "CommandLine", "ParentImage", "ProcessGuid", "date_hour"]
TRICKY_NAMES = ["a,b", 'q"uote', "$", "x;y", "new\nline", "cr\rname", "\U0001F984", "\u05e9\u05d3\u05d4",
                "field with space", " ", "__mv", "mv_x", "0digits", "\u00dcn\u00efc\u00f8d\u00e9", "\ufeffbom",
                "image", "IMAGE", "Image ", "\u202eImage", "dollar$name", "a=b"]
FIELD_NAME = st.one_of(st.sampled_from(SPLUNK_NAMES + TRICKY_NAMES + OUTPUT_NAMES),
                       TEXT).filter(lambda name: name and not name.startswith("__mv_"))


def _role_pools():
    """{field name: values that mean something for it} for every profile's fields (any profile's events may
    turn up in any search)."""
    pools = {}
    for name, roles in PROFILES.items():
        for role, pool in (("image", IMAGES), ("original", IMAGES), ("port", PORTS), ("dest", DESTS),
                           ("direction", DIRECTIONS[name])):
            for field in roles[role]:
                pools.setdefault(field, list(pool))
    return pools


POOLS = _role_pools()


def bulk_list(seed, count):
    rng = random.Random(seed)
    return [bulk_text(rng, rng.choice((0, 1, 3, 12))) for _ in range(count)]


def seeded_value(rng, name):
    """A cell from a seed: mostly a known value of the field, else mixed text, sometimes a multivalue."""
    pick = rng.random()
    if pick < 0.1:
        return bulk_list(rng.getrandbits(32), rng.choice((0, 1, 2, 3, 5, 100)))
    if name in POOLS and pick < 0.85:
        return rng.choice(POOLS[name])
    return bulk_text(rng, rng.choice((0, 1, 4, 12, 40)))


@functools.lru_cache(maxsize=4096)
def values_for(name):
    """A strategy for one cell of field `name`: a value, or a multivalue list of 0 to 100 values."""
    single = st.one_of(st.sampled_from(POOLS[name]), TEXT) if name in POOLS else TEXT
    return st.one_of(
        single, single, single,
        st.lists(single, max_size=4),
        st.builds(bulk_list, st.integers(0, 2 ** 32), st.integers(90, 100)),
    )


@st.composite
def chunks(draw, profile, shared_names):
    """(field names, records) of one chunk: 0 to 500 fields, 0, 1 or a few records."""
    roles = PROFILES[profile]
    role_names = [field for key in ("image", "original", "port", "dest", "direction", "host", "user")
                  for field in roles[key]]
    other_names = [field for name in PROFILES if name != profile for key in ("image", "port", "dest")
                   for field in PROFILES[name][key]]
    shape = draw(st.integers(0, 19))
    if shape == 0 and "records-without-fields" not in OPEN_BUGS:
        names = []
    else:
        names = draw(st.lists(st.sampled_from(role_names + other_names), unique=True, max_size=9))
        names += draw(st.lists(st.one_of(st.sampled_from(shared_names), FIELD_NAME), max_size=8))
        if shape == 1:        # a wide chunk: 400 to 500 fields
            rng = random.Random(draw(st.integers(0, 2 ** 32)))
            target = draw(st.integers(400, 500))
            while len(set(names)) < target:
                name = bulk_text(rng, rng.randint(1, 24))
                if name and not name.startswith("__mv_"):
                    names.append(name)
        names = list(dict.fromkeys(names))
        random.Random(draw(st.integers(0, 2 ** 16))).shuffle(names)
        if not names and "records-without-fields" in OPEN_BUGS:
            names = [role_names[0]]
    count = draw(st.sampled_from((0, 1, 1, 3, 12, 40, 120, 300)))
    if not names and count == 0:
        count = 1
    if shape == 1:
        count = min(count, 40)
    # Hypothesis draws (and shrinks) the cells of the profiles' fields and of a few others in the first
    # records; every other cell comes from a drawn seed, so that large chunks cost little to generate.
    drawn = [name for name in names if name in POOLS] + [name for name in names if name not in POOLS][:4]
    rng = random.Random(draw(st.integers(0, 2 ** 32)))
    records = []
    for index in range(count):
        record = {}
        for name in names:
            if index < 6 and name in drawn:
                if draw(st.integers(0, 5)) == 0:
                    continue                          # the record lacks the field: an empty cell
                record[name] = draw(values_for(name))
            elif rng.random() < 0.8:
                record[name] = seeded_value(rng, name)
        records.append(record)
    if records and names and draw(st.integers(0, 9)) == 0:
        # A value of up to 1 MB in one record.
        victim = draw(st.sampled_from(range(len(records))))
        field = draw(st.sampled_from(names))
        records[victim][field] = big_value(draw(st.integers(0, 2 ** 32)), draw(BIG_SIZES))
    return names, records


@st.composite
def conversations(draw, max_chunks=8):
    profile = draw(st.sampled_from(sorted(PROFILES)))
    options = {"profile": profile, "direction": draw(st.sampled_from(["outbound", "any"]))}
    interpreter = draw(st.sampled_from(sorted(INTERPRETERS)))
    shared = draw(st.lists(FIELD_NAME, min_size=1, max_size=6, unique=True))
    conversation = [draw(chunks(profile, shared)) for _ in range(draw(st.integers(0, max_chunks)))]
    return {"options": options, "interpreter": interpreter, "chunks": without_open_bugs(conversation, interpreter)}


def without_open_bugs(conversation, interpreter):
    """The conversation, minus what an open bug (fuzz_regressions.OPEN_BUGS) would fail on under `interpreter`:
    NUL becomes U+2400 under 3.9; a multivalue's empty first value becomes "-"."""
    nul = "nul-in-a-value-python-3.9" in OPEN_BUGS and interpreter == "3.9"
    first = "multivalue-first-value-empty" in OPEN_BUGS

    def clean(value):
        if isinstance(value, list):
            value = [clean(item) for item in value]
            if first and len(value) > 1 and value[0] == "":
                value[0] = "-"
            return value
        return value.replace("\x00", "\u2400") if nul else value

    if nul or first:
        conversation = [(list(dict.fromkeys(clean(name) for name in names)),
                         [{clean(name): clean(value) for name, value in record.items()} for record in records])
                        for names, records in conversation]
    return conversation


# --------------------------------------------------------------------------- running and checking

_POOL = ThreadPoolExecutor(max_workers=2)
STATS = {"conversations": 0, "runs": 0, "chunks": 0, "records": 0, "fields": 0, "bytes": 0}


def args_for(options, mode):
    return ["mode=%s" % mode] + ["%s=%s" % item for item in sorted(options.items())]


def build_input(args, conversation):
    data = [scpv2.encode_chunk(scpv2.getinfo_metadata(args))]
    for names, records in conversation:
        data.append(scpv2.encode_chunk({"action": "execute", "finished": False},
                                       scpv2.encode_records(records, names)))
    data.append(scpv2.encode_chunk({"action": "execute", "finished": True}))
    return b"".join(data)


def normal(value):
    """A value as splunkd decodes it: [] is an empty cell, a one-value list its value."""
    if value.__class__ in (list, tuple):
        if len(value) > 1:
            return list(value)
        return value[0] if value else ""
    return value


def normalized(record):
    """`record` with each value as splunkd decodes it (in place: most records have no list to change)."""
    for name, value in record.items():
        if value.__class__ in (list, tuple):
            record[name] = normal(value)
    return record


def sent_records(names, records):
    """The records of a chunk as splunkd (and the SDK) decode it: every field of the header, "" when lacking."""
    return [normalized({name: record.get(name, "") for name in names}) for record in records]


def expected(options, mode, conversation):
    """(per chunk, the records Classifier.process returns; its missing-field counts) - the pure function."""
    engine = Classifier(Settings(ROOT, mode=mode, **options))
    replies = [[normalized(record) for record in engine.process(sent_records(names, records))]
               for names, records in conversation]
    return replies, dict(engine.missing)


def first_value(record, fields):
    for field in fields:
        value = record.get(field, "")
        value = value[0] if isinstance(value, list) else value
        if value:
            return value
    return ""


def oracle_check(record, options):
    """The contract's rules (issue 2), checked on one output record without the package's code."""
    roles = PROFILES[options["profile"]]
    image = first_value(record, roles["image"])
    assert record["ImageBasename"] == re.split(r"[\\/]", image)[-1]
    port = first_value(record, roles["port"]).strip()
    digits = port and all("0" <= c <= "9" for c in port) and int(port) <= 65535
    assert record["DestPort"] == (str(int(port)) if digits else "")
    assert record["IsInternal"] in ("0", "1")
    assert record["Allowlisted"] == "0" and record["AllowlistReason"] == ""     # the shipped allowlist is empty
    label = record["SuspicionLabel"]
    flags = (record["IsScriptInterpreter"], record["IsLOLBin"], record["IsUnusualSystem"])
    assert flags in (("0", "0", "0"),) + tuple(FLAGS.values())
    if label:
        assert label in CATEGORIES and record["DestPort"] in DEFAULT_PORTS
        direction = first_value(record, roles["direction"]).strip().lower()
        assert options["direction"] == "any" or direction != roles["inbound"].lower()
        assert record["risk_score"] != "" and record["mitre_technique_id"] != ""
        assert record["MatchedOn"] in roles["image"] + roles["original"]
    else:
        assert record["risk_score"] == "" and record["mitre_technique_id"] == ""


def warnings_for(missing):
    return ["classifyport: %d event(s) had no %s field and were not labelled" % (count, field)
            for field, count in sorted(missing.items())]


def run_conversation(example):
    """Run `example` in annotate and filter mode at once; assert every property. Returns the two Results."""
    conversation, options = example["chunks"], example["options"]
    python = INTERPRETERS[example["interpreter"]]
    stdins = {mode: build_input(args_for(options, mode), conversation) for mode in ("annotate", "filter")}
    futures = {mode: _POOL.submit(scpv2.run, python=python, stdin=stdin, timeout=TIMEOUT)
               for mode, stdin in stdins.items()}
    results = {mode: future.result() for mode, future in futures.items()}
    STATS["conversations"] += 1
    STATS["runs"] += 2
    STATS["chunks"] += len(conversation)
    STATS["records"] += sum(len(records) for _, records in conversation)
    STATS["fields"] += sum(len(names) for names, _ in conversation)
    STATS["bytes"] += len(stdins["annotate"])

    annotated = None
    for mode, result in results.items():
        where = "%s mode under %s" % (mode, example["interpreter"])
        scpv2.check_conversation(stdins[mode], result)
        assert result.returncode == 0 and result.stderr == b"", (where, result.stderr[-3000:])
        assert result.messages("ERROR") == [], (where, result.messages())
        want, missing = expected(options, mode, conversation)
        assert len(result.replies) == len(conversation) + 1, where
        for number, ((_, got), wanted, (names, records)) in enumerate(zip(result.replies, want, conversation), 1):
            got = [normalized(record) for record in got]
            if mode == "annotate":
                # Every record once, in order, every input field and value unchanged (an output field it
                # had is the command's to set), plus exactly the output fields.
                assert len(got) == len(records), "%s: chunk %d: %d records in, %d out" % (
                    where, number, len(records), len(got))
                for index, (record, sent) in enumerate(zip(got, sent_records(names, records))):
                    kept = {name: value for name, value in sent.items() if name not in OUTPUT_FIELDS}
                    assert {name: record.get(name) for name in kept} == kept, \
                        "%s: chunk %d record %d altered" % (where, number, index)
                    assert set(record) == set(sent) | set(OUTPUT_FIELDS), (where, number, index)
                    oracle_check(record, options)
            assert got == wanted, "%s: chunk %d differs from Classifier.process" % (where, number)
        assert result.replies[-1][1] == []
        assert result.messages("WARN") == warnings_for(missing), where
        if mode == "annotate":
            annotated = result
    labelled = [record for record in annotated.records if record["SuspicionLabel"]]
    assert results["filter"].records == labelled
    return results


# --------------------------------------------------------------------------- the tests

@budget(bounded_examples=30)
@given(example=conversations())
def test_conversations(example):
    """Mixed conversations: up to 8 chunks of 0 to 300 records, 0 to 500 fields, multivalues of 0 to 100
    values, an occasional value of up to 1 MB, every profile, both directions, every interpreter."""
    run_conversation(example)


@st.composite
def extreme_chunks(draw, profile):
    """The extremes the issue names, in one conversation: chunks of 0 and 1 record, a chunk of 400 to 500
    fields, multivalue fields of 100 values, values of up to 1 MB (several, in several records)."""
    rng = random.Random(draw(st.integers(0, 2 ** 32)))
    roles = PROFILES[profile]
    names = [roles["image"][0], roles["port"][0], roles["dest"][0], roles["direction"][0], "_raw", "mv\u00e9"]

    def event(big):
        record = {name: rng.choice(POOLS[name]) for name in names[:4]}
        record["_raw"] = big_value(rng.getrandbits(32), big)
        record["mv\u00e9"] = bulk_list(rng.getrandbits(32), rng.choice((0, 1, 2, 100)))
        return record

    sizes = draw(st.lists(BIG_SIZES, min_size=1, max_size=3))
    wide = names + [name for name in dict.fromkeys(bulk_text(rng, rng.randint(1, 20)) for _ in range(700))
                    if name and not name.startswith("__mv_")][:draw(st.integers(400, 500)) - len(names)]
    wide_records = []
    for _ in range(draw(st.integers(1, 6))):
        record = event(rng.choice((0, 10, 1000)))
        for name in wide[len(names):]:
            if rng.random() < 0.8:
                record[name] = seeded_value(rng, name)
        wide_records.append(record)
    parts = [(names, []), (names, [event(0)]), (names, [event(size) for size in sizes]), (wide, wide_records)]
    return [parts[index] for index in draw(st.permutations(range(4)))]


@budget(bounded_examples=2, long_examples=max(10, LONG_EXAMPLES // 50))
@given(example=conversations(max_chunks=2), data=st.data())
def test_extremes(example, data):
    extremes = data.draw(extreme_chunks(example["options"]["profile"]))
    chunks_ = without_open_bugs(example["chunks"] + extremes, example["interpreter"])
    run_conversation(dict(example, chunks=chunks_))


@budget(bounded_examples=1, long_examples=max(3, LONG_EXAMPLES // 200))
@given(example=conversations(max_chunks=1), pool=chunks("sysmon", ["x"]))
def test_chunk_of_100000_records(example, pool):
    """One chunk of 100,000 records (generated records repeated, with a serial), between a chunk of 0 and
    one of 1 record, under Python 3.9 (Splunk 9's)."""
    names, records = pool
    if not records:
        records = [{}]
    # This test is about the number of records in one chunk; wide records and huge values are
    # test_extremes'. Without a cap, a long run (make fuzz) repeats a 500-field, megabyte record
    # 100,000 times and the harness alone needs over 16 GB.
    assume(len(names) <= 60 and sum(len(str(value)) for record in records for value in record.values())
           <= 2000 * len(records))
    names = names + ["_serial"]
    big = [dict(records[n % len(records)], _serial=str(n)) for n in range(100000)]
    chunks_ = [(names, []), (names, big[:1])] + example["chunks"] + [(names, big)]
    interpreter = "3.9" if "3.9" in INTERPRETERS else example["interpreter"]
    run_conversation(dict(example, interpreter=interpreter, chunks=without_open_bugs(chunks_, interpreter)))


def _regression_params():
    for entry in fuzz_regressions.REGRESSIONS:
        for interpreter in entry["interpreters"]:
            marks = []
            if entry["id"] in OPEN_BUGS:
                reason = "open bug: " + fuzz_regressions.OPEN_BUGS[entry["id"]]
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            yield pytest.param(entry, interpreter, id="%s-%s" % (entry["id"], interpreter), marks=marks)


@pytest.mark.parametrize("entry, interpreter", list(_regression_params()))
def test_regression(entry, interpreter):
    """Each failing example the fuzzer found (fuzz_regressions.py), through the same properties."""
    run_conversation({"options": entry["options"], "interpreter": interpreter,
                      "chunks": [(list(names), records) for names, records in entry["chunks"]]})


@pytest.fixture(scope="module", autouse=True)
def report_stats(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and STATS["conversations"]:
        with capture.global_and_fixture_disabled():
                reporter.write_line("\nfuzz (%s): %d conversations (%d command runs), %d chunks, %d generated records, "
                                "%d chunk fields, %.1f MB sent per mode" % (
                                    FUZZ, STATS["conversations"], STATS["runs"], STATS["chunks"], STATS["records"],
                                    STATS["fields"], STATS["bytes"] / 1e6))
