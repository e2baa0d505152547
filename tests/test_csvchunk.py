"""The command's own CSV record path must give splunkd the records the SDK's record path gives.

The command passes each input record's text through and appends its columns, so
the bytes differ from the SDK's (which rewrites every row as field,__mv_field
pairs); decoded as splunkd decodes them, the records must be identical: same
fields in the same order, same values, a one-value multivalue equal to the value.
"""
import io
import random

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT
from portclassify import classifier
from portclassify.csvchunk import ChunkClassifier, decode_mv, encode_mv, record_end
from splunklib.searchcommands.internals import RecordWriterV2
from splunklib.searchcommands.search_command import SearchCommand

import scpv2


def sdk_reply(body, settings_):
    """What splunklib 2.1.1 writes for `body` when the dict path (Classifier.process) classifies it."""
    engine = classifier.Classifier(settings_)
    records = SearchCommand._read_csv_records(SearchCommand, io.StringIO(body))
    out = io.BytesIO()
    writer = RecordWriterV2(out)
    writer.write_records(engine.process(records))
    return writer._buffer.getvalue(), engine.missing


def fast_reply(body, settings_):
    engine = classifier.Classifier(settings_)
    text, count = ChunkClassifier(engine).process(body)
    return text, engine.missing


def decoded(text):
    """Records as splunkd reads a reply, a one-value multivalue being that value. (Column
    order is checked by the protocol tests; here only fields and values.)"""
    records = []
    for record in scpv2.decode_records(text):
        items = {}
        for name, value in record.items():
            if isinstance(value, list):
                value = value[0] if len(value) == 1 else ("" if not value else value)
            items[name] = value
        records.append(items)
    return records


def same_records(fast, sdk):
    (fast_text, fast_missing), (sdk_text, sdk_missing) = fast, sdk
    assert decoded(fast_text) == decoded(sdk_text)
    assert fast_missing == sdk_missing
    return True


IMAGES = [r"C:\Windows\System32\cmd.exe", r"C:\x\PowerShell.EXE", "C:/tools/certutil.exe", r"C:\a\chrome.exe",
          r"C:\Users\Public\update.exe", "notepad.exe", "", "xcmd.exe", "<unknown process>"]
PORTS = ["443", "80", "0053", "8080", "", "-", "99999", " 22 "]
DESTS = ["10.1.2.3", "8.8.8.8", "0:0:0:0:0:0:0:1", "::ffff:192.168.1.1", "", "host.example.com", "fe80:0:0:0:1:2:3:4"]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def field_value(pool):
    return st.one_of(st.sampled_from(pool), TEXT,
                     st.lists(st.one_of(st.sampled_from(pool), TEXT), min_size=0, max_size=3))


RECORD = st.fixed_dictionaries(
    {"Image": field_value(IMAGES), "DestinationPort": field_value(PORTS), "DestinationIp": field_value(DESTS),
     "Initiated": st.sampled_from(["true", "false", "", " False"])},
    optional={"OriginalFileName": field_value(["PowerShell.EXE", "rundll32.exe", "Cmd.Exe", ""]),
              "_raw": TEXT, "host": st.sampled_from(["WKS-1", "srv-2"]), "User": TEXT,
              "SuspicionLabel": TEXT, "risk_score": field_value(["1", "2"]), "note$": TEXT})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORD, min_size=0, max_size=12), mode=st.sampled_from(["filter", "annotate"]),
       direction=st.sampled_from(["outbound", "any"]))
def test_fast_path_matches_sdk_path(records, mode, direction):
    settings_ = classifier.Settings(ROOT, mode=mode, direction=direction)
    body = scpv2.encode_records(records)
    assert same_records(fast_reply(body, settings_), sdk_reply(body, settings_))


def test_multivalue_image_classifies_by_first_value():
    settings_ = classifier.Settings(ROOT, mode="annotate")
    body = scpv2.encode_records([{"Image": [r"C:\a\cmd.exe", r"C:\b\chrome.exe"], "DestinationPort": "443"},
                                 {"Image": [r"C:\b\chrome.exe", r"C:\a\cmd.exe"], "DestinationPort": "443"}])
    text, count = ChunkClassifier(classifier.Classifier(settings_)).process(body)
    records = scpv2.decode_records(text)
    assert count == 2
    assert [r["SuspicionLabel"] for r in records] == ["ScriptInterpreter", ""]
    assert records[0]["Image"] == [r"C:\a\cmd.exe", r"C:\b\chrome.exe"]


def test_mv_cells_round_trip():
    rng = random.Random(7)
    for _ in range(500):
        values = ["".join(rng.choice("a$;b\n ") for _ in range(rng.randrange(5))) for _ in range(rng.randrange(1, 5))]
        assert decode_mv(encode_mv(values)) == values


def test_hand_written_bodies_match_sdk():
    """Bodies scpv2 never writes: a one-value __mv_ cell, a __mv_ column before its field,
    a __mv_-only field."""
    bodies = [
        'Image,DestinationPort,__mv_Image,__mv_DestinationPort\r\n'
        'C:\\a\\cmd.exe,443,$C:\\a\\cmd.exe$,$443$\r\n'
        'x,80,,\r\n',
        '__mv_Image,Image,DestinationPort\r\n'
        '$C:\\a\\cmd.exe$;$b$,"C:\\a\\cmd.exe\nb",443\r\n',
        'DestinationPort,__mv_Image,__mv_tags\r\n'
        '443,$C:\\a\\mshta.exe$;$y$,$a$$b$;$c$\r\n',
    ]
    for mode in ("filter", "annotate"):
        settings_ = classifier.Settings(ROOT, mode=mode)
        for body in bodies:
            assert same_records(fast_reply(body, settings_), sdk_reply(body, settings_)), (mode, body)


def test_ragged_rows_keep_every_field():
    """splunkd never sends them, but a short row is padded and a long one cut to the header;
    unlike the SDK (whose first record fixes the columns) no field of the other rows is lost."""
    body = 'Image,DestinationPort,extra\r\nC:\\a\\cmd.exe,443\r\nC:\\a\\cmd.exe,443,1,2,3\r\n'
    text, count = ChunkClassifier(classifier.Classifier(classifier.Settings(ROOT))).process(body)
    records = scpv2.decode_records(text)
    assert count == 2
    assert [(r["extra"], r["SuspicionLabel"]) for r in records] == [("", "ScriptInterpreter"), ("1", "ScriptInterpreter")]


# ---------------------------------------------------------------- the matched path vs the parsed path
#
# ChunkClassifier reads a well-formed chunk with regular expressions (_append_matched) and
# anything else with the csv module (_append). The two must write the same bytes; a body the
# expressions cannot read exactly must go to the csv module, never half-way.

def _quote(cell, always):
    if always or any(c in cell for c in '",\r\n'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def splunkd_body(records, quote_all, line_end):
    """encode_records' layout, with splunkd's other habits: every string cell quoted, CRLF or LF."""
    names = []
    for record in records:
        names.extend(name for name in record if name not in names)
    rows = [[_quote(name, quote_all) for name in names + ["__mv_" + name for name in names]]]
    for record in records:
        plain, multi = [], []
        for name in names:
            value = record.get(name, "")
            if isinstance(value, list):
                plain.append("\n".join(value))
                multi.append(encode_mv(value) if len(value) > 1 else "")
            else:
                plain.append(value)
                multi.append("")
        rows.append([_quote(cell, quote_all and cell != "") for cell in plain] + [_quote(cell, False) for cell in multi])
    return line_end.join(",".join(row) for row in rows) + line_end


def both_paths(body, settings_):
    fast = ChunkClassifier(classifier.Classifier(settings_))
    slow = ChunkClassifier(classifier.Classifier(settings_))
    return (fast.process(body), fast.classifier.missing), (slow._append(body), slow.classifier.missing)


def cut_at_line_ends(body, picks):
    """The body in pieces that each end at a line end: where a record ends, or inside a quoted
    cell (the command cuts only where the quotes before are even, but damaged input breaks that)."""
    ends = [at + 1 for at, char in enumerate(body) if char == "\n"]
    cuts = sorted({ends[pick % len(ends)] for pick in picks}) if ends else []
    return [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)]) if a < b] or [body]


# Damage a well-formed body the way hand-made or broken input might: a quote inside an
# unquoted cell, a bare CR, a cell too many or too few, text after a closing quote.
DAMAGE = [lambda b: b.replace(",", ',x"y', 3), lambda b: b.replace("\n", "\r", 2),
          lambda b: b.replace(",,", ",", 1), lambda b: b.replace("\n", ",\n", 2),
          lambda b: b.replace('",', '"z,', 1)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORD, min_size=1, max_size=10), mode=st.sampled_from(["filter", "annotate"]),
       quote_all=st.booleans(), line_end=st.sampled_from(["\r\n", "\n"]),
       damage=st.one_of(st.none(), st.sampled_from(range(len(DAMAGE)))),
       profile=st.sampled_from(["sysmon", "cim"]), picks=st.lists(st.integers(0, 10 ** 6), max_size=6))
def test_matched_path_writes_what_the_csv_path_writes(records, mode, quote_all, line_end, damage, profile, picks):
    records = [{name: value for name, value in record.items() if name not in classifier.OUTPUT_FIELDS}
               for record in records]
    if profile == "cim":
        renames = {"Image": "process_name", "DestinationPort": "dest_port", "DestinationIp": "dest_ip"}
        records = [{renames.get(name, name): value for name, value in record.items()} for record in records]
    body = splunkd_body(records, quote_all, line_end)
    if damage is not None:
        body = DAMAGE[damage](body)
    settings_ = classifier.Settings(ROOT, profile=profile, mode=mode)
    fast, slow = both_paths(body, settings_)
    assert fast == slow
    # The same body read in pieces writes the same bytes and counts.
    pieces = cut_at_line_ends(body, picks)
    assert "".join(pieces) == body
    in_pieces = ChunkClassifier(classifier.Classifier(settings_))
    assert (in_pieces.process(pieces), in_pieces.classifier.missing) == fast


def record_ends(body):
    """Byte offsets where the csv module ends the header and each record of `body`."""
    lines, ends, consumed = iter(io.StringIO(body, newline="")), [], []

    def take():
        for line in lines:
            consumed.append(len(line.encode("utf-8")))
            yield line

    for _ in __import__("csv").reader(take()):
        ends.append(sum(consumed))
    return ends


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORD, min_size=1, max_size=8), quote_all=st.booleans(),
       line_end=st.sampled_from(["\r\n", "\n"]), data=st.data())
def test_record_end_finds_where_records_end(records, quote_all, line_end, data):
    """The command cuts a body into pieces where record_end says a record ends: from any record
    start, with any part of the record carried over from the last piece, it finds the last
    record end the csv module finds, never one inside a quoted cell."""
    body = splunkd_body(records, quote_all, line_end)
    raw = body.encode("utf-8")
    ends = record_ends(body)
    start = data.draw(st.sampled_from([0] + ends[:-1]), "start")
    carried = data.draw(st.integers(start, len(raw)), "carried")
    stop = data.draw(st.integers(carried, len(raw)), "stop")
    odd = raw.count(b'"', start, carried) & 1
    cut = record_end(raw[carried:stop], odd)
    inside = [end for end in ends if carried < end <= stop]
    assert (carried + cut if cut else None) == (max(inside) if inside else None)


def test_matched_path_reads_splunkd_bodies():
    """The regular expressions, not the csv module, read what splunkd sends: a quoted _raw with
    newlines, quoted strings and empty __mv_ cells (and the output matches the csv module's)."""
    records = [{"_raw": '<Event>\n<Data Name="Image">C:\\a\\cmd.exe</Data>\n</Event>', "Image": r"C:\a\cmd.exe",
                "DestinationPort": "443", "DestinationIp": "8.8.8.8", "Initiated": "true"},
               {"_raw": "x", "Image": r"C:\b\chrome.exe", "DestinationPort": "443", "DestinationIp": "10.0.0.1",
                "Initiated": "true"}]
    body = splunkd_body(records, True, "\n")
    header = next(iter(__import__("csv").reader(io.StringIO(body))))
    for mode in ("filter", "annotate"):
        chunks = ChunkClassifier(classifier.Classifier(classifier.Settings(ROOT, mode=mode)))
        matched = chunks._append_matched([body], header, body.index("\n") + 1)
        assert matched is not None
        assert matched == chunks._append(body)
        assert matched[1] == (1 if mode == "filter" else 2)
    damaged = body.replace('"443"', '4"43', 1)
    assert chunks._append_matched([damaged], header, body.index("\n") + 1) is None


def test_an_empty_value_in_quotes_is_empty():
    """`""` is an empty value: the image, port or destination it stands for is missing (counted),
    whichever reader reads the chunk."""
    header = "Image,DestinationPort,DestinationIp,__mv_Image,__mv_DestinationPort,__mv_DestinationIp\r\n"
    rows = ['"",443,8.8.8.8,,,\r\n', 'C:\\a\\chrome.exe,"",8.8.8.8,,,\r\n', 'C:\\a\\chrome.exe,443,"",,,\r\n',
            'C:\\a\\cmd.exe,"",8.8.8.8,,,\r\n', '"C:\\a\\cmd.exe","443","",,,\r\n']
    body = header + "".join(rows)
    for mode in ("filter", "annotate"):
        fast, slow = both_paths(body, classifier.Settings(ROOT, mode=mode))
        assert fast == slow
        assert fast[1] == {"Image": 1, "DestinationPort": 2}
    records = scpv2.decode_records(fast[0][0])
    assert [(r["DestPort"], r["IsInternal"], r["SuspicionLabel"]) for r in records] == [
        ("443", "0", ""), ("", "0", ""), ("443", "0", ""), ("", "0", ""), ("443", "0", "ScriptInterpreter")]
