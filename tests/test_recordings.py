"""Replay real splunkd transcripts (Splunk 6.3, ../shared/data/scpv2-recordings) through `| classifyport`.

Only the getinfo chunk's args are rewritten (and the header's metadata length
fixed); every other byte goes to the command exactly as splunkd sent it. The
input records are decoded here with a CSV + __mv_ decoder of this file's own,
independent of tools/scpv2.py and of splunklib, and compared with what comes
back. The recordings are tweets and random events, not network connections, so
filter mode must return none of them.
"""
import csv
import gzip
import io
import json
import re
import sys

import pytest

import scpv2
from conftest import shared_path

RECORDINGS = ("scpv2-recordings", "Splunk-6.3")
OUTPUT_FIELDS = ("ImageBasename", "DestPort", "IsScriptInterpreter", "IsLOLBin", "IsUnusualSystem",
                 "IsInternal", "SuspicionLabel", "Allowlisted", "AllowlistReason",
                 "MatchedOn", "mitre_technique_id", "risk_score")
NOT_APPLICABLE = {"ImageBasename": "", "DestPort": "", "IsScriptInterpreter": "0", "IsLOLBin": "0",
                  "IsUnusualSystem": "0", "IsInternal": "0", "SuspicionLabel": "", "Allowlisted": "0",
                  "AllowlistReason": "", "MatchedOn": "", "mitre_technique_id": "", "risk_score": ""}
_MV_VALUE = re.compile(r"\$((?:\$\$|[^$])*)\$(?:;|\Z)")

_cache = {}


def recording(name):
    """The exact bytes splunkd sent in the recorded session `name` (skips when ../shared is absent)."""
    path = shared_path("data", *RECORDINGS, name + ".input.gz")
    if path not in _cache:
        with gzip.open(path, "rb") as handle:
            _cache[path] = handle.read()
    return _cache[path]


def recorded_output(name):
    with open(shared_path("data", *RECORDINGS, name), "rb") as handle:
        return handle.read()


def split_input(data):
    """[(metadata dict, body bytes)] of a splunkd input stream, parsed here without scpv2."""
    chunks, pos = [], 0
    header = re.compile(rb"chunked 1\.0,(\d+),(\d+)\n")
    while pos < len(data):
        match = header.match(data, pos)
        assert match, "bad header at byte %d: %r" % (pos, data[pos:pos + 40])
        meta_end = match.end() + int(match.group(1))
        body_end = meta_end + int(match.group(2))
        chunks.append((json.loads(data[match.end():meta_end].decode("utf-8")), data[meta_end:body_end]))
        pos = body_end
    assert pos == len(data)
    return chunks


def splunkd_records(body):
    """Records of a splunkd CSV body: (field names in order, [{field: value or [values]}])."""
    text = body.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, rows = rows[0], rows[1:]
    names = [name for name in header if not name.startswith("__mv_")]
    position = {name: index for index, name in enumerate(header)}
    plain = [position[name] for name in names]
    multi = [(position["__mv_" + name], name) for name in names if "__mv_" + name in position]
    records = []
    for row in rows:
        assert len(row) == len(header)
        record = dict(zip(names, [row[index] for index in plain]))
        for index, name in multi:
            if row[index]:
                values = [match.group(1).replace("$$", "$") for match in _MV_VALUE.finditer(row[index])]
                record[name] = values if len(values) > 1 else values[0]
        records.append(record)
    return names, records


def replay(name, args, python=None):
    data = scpv2.rewrite_getinfo(recording(name), args)
    result = scpv2.run(stdin=data, python=python or sys.executable, timeout=300)
    scpv2.check_conversation(data, result)
    text = result.stdout.decode("utf-8")
    assert "Traceback" not in text and b"Traceback" not in result.stderr
    return data, result


def warning_counts(result):
    """{field: count} from the missing-field warnings."""
    counts = {}
    for text in result.messages("WARN"):
        numbers = re.findall(r"\b\d+\b", text)
        fields = [field for field in ("Image", "DestinationPort") if re.search(r"\b%s\b" % field, text)]
        assert len(fields) == 1 and numbers, text
        assert fields[0] not in counts, "two warnings for %s" % fields[0]
        counts[fields[0]] = int(numbers[0])
    return counts


# --------------------------------------------------------------------------- the rewrite itself

@pytest.mark.parametrize("name", ["countmatches", "sum.map", "sum.reduce"])
@pytest.mark.parametrize("args", [["mode=annotate"], [], ["ports=80,443,8000-8100", "direction=any"]])
def test_rewrite_changes_only_the_args(name, args):
    original = recording(name)
    rewritten = scpv2.rewrite_getinfo(original, args)
    before, after = split_input(original), split_input(rewritten)
    assert len(before) == len(after)
    old_meta, new_meta = before[0][0], after[0][0]
    assert new_meta["searchinfo"]["args"] == args and new_meta["searchinfo"]["raw_args"] == args
    for meta in (old_meta, new_meta):
        del meta["searchinfo"]["args"], meta["searchinfo"]["raw_args"]
    assert old_meta == new_meta
    old_first = re.match(rb"chunked 1\.0,(\d+),0\n", original)
    new_first = re.match(rb"chunked 1\.0,(\d+),0\n", rewritten)
    tail = original[old_first.end() + int(old_first.group(1)):]
    assert rewritten[new_first.end() + int(new_first.group(1)):] == tail     # every execute byte as recorded
    assert tail.startswith(b"chunked 1.0,")


# --------------------------------------------------------------------------- annotate: nothing lost

def check_annotated(name, data, result):
    chunks = split_input(data)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.chunks) == len(chunks)
    total = 0
    for (request, body), (reply, records) in zip(chunks[1:], result.replies):
        assert reply.get("finished", False) == request.get("finished", False)
        names, sent = splunkd_records(body) if body else ([], [])
        assert len(records) == len(sent)
        for index, (want, got) in enumerate(zip(sent, records)):
            assert list(got)[:len(names)] == names, "record %d: fields out of order" % index
            assert {field: got[field] for field in names} == want, "record %d altered" % index
            assert sorted(list(got)[len(names):]) == sorted(OUTPUT_FIELDS), "record %d: %r" % (index, list(got))
            assert {field: got[field] for field in OUTPUT_FIELDS} == NOT_APPLICABLE, "record %d" % index
        total += len(sent)
    assert len(result.records) == total
    assert warning_counts(result) == {"Image": total, "DestinationPort": total}
    return total


def test_countmatches_annotate(python):
    data, result = replay("countmatches", ["mode=annotate"], python=python)
    assert check_annotated("countmatches", data, result) == 500
    texts = [r["text"] for r in result.records]
    assert any("\n" in t for t in texts) and any(ord(c) > 0xFFFF for t in texts for c in t)


def test_sum_map_annotate():
    data, result = replay("sum.map", ["mode=annotate"])
    assert check_annotated("sum.map", data, result) == 50000


def test_sum_reduce_annotate():
    data, result = replay("sum.reduce", ["mode=annotate"])
    assert check_annotated("sum.reduce", data, result) == 1


# --------------------------------------------------------------------------- filter: none of these

@pytest.mark.parametrize("name, count", [("countmatches", 500), ("sum.map", 50000)])
def test_filter_mode_returns_no_record(name, count):
    data, result = replay(name, [])
    assert result.returncode == 0
    assert result.records == []
    assert all(body == "" for _, body in result.chunks[1:])
    assert warning_counts(result) == {"Image": count, "DestinationPort": count}


# --------------------------------------------------------------------------- framing conventions

def test_reply_follows_the_recorded_sdk_output():
    """Our reply to the countmatches session is framed as the SDK's recorded reply was:
    the same getinfo reply bytes, one execute reply marked finished, the same fields (splunkd's
    columns, then ours in field,__mv_field pairs), CRLF rows, and the recorded values unchanged."""
    recorded = recorded_output("countmatches.output")
    data, result = replay("countmatches", ["mode=annotate"])
    recorded_chunks = scpv2.read_chunks(recorded)
    assert len(recorded_chunks) == len(result.chunks) == 2
    getinfo_reply = b'chunked 1.0,20,0\n{"type":"streaming"}'
    assert recorded.startswith(getinfo_reply) and result.stdout.startswith(getinfo_reply)
    (rec_meta, rec_body), (our_meta, our_body) = recorded_chunks[1], result.chunks[1]
    assert rec_meta == {"finished": True} and our_meta["finished"] is True
    assert set(our_meta) <= {"finished", "inspector"}
    rec_header = next(csv.reader(io.StringIO(rec_body, newline="")))
    our_header = next(csv.reader(io.StringIO(our_body, newline="")))
    # The SDK rewrote splunkd's columns as field,__mv_field pairs; classifyport passes splunkd's
    # own header (and each record's text) through and appends its pairs.
    input_body = scpv2.read_chunks(data)[1][1]
    passthrough = next(csv.reader(io.StringIO(input_body, newline="")))
    assert sorted(passthrough) == sorted(name for name in rec_header if name not in ("word_count", "__mv_word_count"))
    assert our_header[:len(passthrough)] == passthrough
    added = our_header[len(passthrough):]
    assert added[1::2] == ["__mv_" + field for field in added[0::2]]
    assert sorted(added[0::2]) == sorted(OUTPUT_FIELDS)
    assert our_body.endswith("\r\n") and rec_body.endswith("\r\n")
    recorded_records = scpv2.decode_records(rec_body)
    assert len(recorded_records) == len(result.records) == 500
    fields = ("_serial", "_time", "text")
    for ours, theirs in zip(result.records, recorded_records):
        assert {k: ours[k] for k in fields} == {k: theirs[k] for k in fields}


@pytest.mark.parametrize("name", ["countmatches.output", "sum.map.output", "sum.map.output.py3", "sum.reduce.output"])
def test_recorded_outputs_read_despite_blank_lines(name):
    """The 2015 outputs have a stray newline between chunks (and CRLF headers in .py3): the lenient
    reader takes them, the strict reader used on our command's stdout refuses them."""
    recorded = recorded_output(name)
    chunks = scpv2.read_chunks(recorded)
    assert len(chunks) == 2
    assert "type" in chunks[0][0] and chunks[0][1] == ""
    assert chunks[1][0] == {"finished": True}
    assert scpv2.decode_records(chunks[1][1])
    with pytest.raises(ValueError):
        scpv2.read_chunks(recorded, strict=True)
