"""Protocol faults: what `| classifyport` does when splunkd's input breaks SCP v2, and the
unusual-but-legal conversations splunkd can hold.

Each case is the exact bytes a broken (or unusual) splunkd would write. For every case
(under 3.9 or 3.13 in turn in make test, under 3.9, 3.13 and the default in make fuzz):
  * the command ends within a timeout (never hangs);
  * stdout is nothing but complete, well-formed chunks (scpv2.read_chunks strict): no
    partial chunk, and no reply to a chunk that did not fully arrive;
  * it ends either cleanly (exit 0, one reply per request, nothing lost) or with exactly
    one ERROR message to splunkd, in the reply splunkd is waiting for: the getinfo reply
    (with `type`) when getinfo itself failed, else an execute reply marked finished that
    carries no records; exit status 1;
  * the ERROR is the message written here per case, with no traceback, source file or
    line number, and search.log (stderr) gets the same line and no traceback.
Expected messages and byte counts are computed here from the bytes sent, not taken
from a run of the command.
"""
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

import scpv2
from conftest import splunk_interpreters

TIMEOUT = 60
TRACEBACK = re.compile(r'Traceback|File "|\.py", line|\.py\b|Error at "|line \d+ :|splunklib')
REPLACEMENT = "\ufffd".encode("utf-8")
INTERPRETERS = [(label, path) for label, path in splunk_interpreters() if path]
# make test (a bounded budget: each run costs an interpreter start) runs each case under one of Splunk's own
# interpreters, 3.9 and 3.13 in turn; CLASSIFYPORT_FUZZ=long (make fuzz) runs every case under all three.
FULL_MATRIX = os.environ.get("CLASSIFYPORT_FUZZ") == "long"

RECORDS = [{"Image": r"C:\Windows\System32\cmd.exe", "DestinationPort": "443", "DestinationIp": "8.8.8.8",
            "Initiated": "true", "_raw": "first, \"quoted\"\nline", "_serial": "0"},
           {"Image": "chrome.exe", "DestinationPort": "443", "_raw": "Grüße 🦄", "_serial": "1"}]
MORE = [{"Image": "rundll32.exe", "DestinationPort": "80", "note": "ünïcødé €", "_serial": "2"}]


def getinfo(args=("mode=annotate",), **extra):
    return scpv2.encode_chunk(scpv2.getinfo_metadata(list(args), **extra))


def execute(records, finished=False):
    return scpv2.encode_chunk({"action": "execute", "finished": finished}, scpv2.encode_records(records))


def raw_chunk(metadata_bytes, body_bytes=b""):
    return b"chunked 1.0,%d,%d\n" % (len(metadata_bytes), len(body_bytes)) + metadata_bytes + body_bytes


def execute_body(body_bytes, finished=False):
    return raw_chunk(json.dumps({"action": "execute", "finished": finished}).encode(), body_bytes)


FINAL = execute([], finished=True)
G, E1, E2 = getinfo(), execute(RECORDS), execute(MORE)


def minimal_getinfo(**searchinfo):
    """A getinfo holding only what splunklib 2.1.1 reads without a default."""
    info = {"args": ["mode=annotate"], "dispatch_dir": "/tmp/dispatch", "earliest_time": "0", "latest_time": "0",
            "search": "%7C%20classifyport", "sid": "1.1", "splunk_version": "9.3.0"}
    info.update(searchinfo)
    return raw_chunk(json.dumps({"action": "getinfo", "preview": False,
                                 "searchinfo": {k: v for k, v in info.items() if v is not None}}).encode())


def getinfo_without(*keys, **top):
    metadata = scpv2.getinfo_metadata(["mode=annotate"])
    for key in keys:
        del metadata["searchinfo"][key]
    metadata.update(top)
    return scpv2.encode_chunk(metadata)


def body_of(chunk):
    """The body bytes of one encoded chunk."""
    header, rest = chunk.split(b"\n", 1)
    _, meta_length, body_length = header.split(b",")
    return rest[int(meta_length):]


# A chunk body cut inside a multibyte character, inside a quoted cell, and at a row end.
E2_BODY = body_of(E2)
CUT_IN_CHAR = E2_BODY.index("€".encode()) + 1
CUT_IN_QUOTES = E2_BODY.index(b"\"\xc3\xbcn") + 3
CUT_AT_ROW = E2_BODY.index(b"\n") + 1


def cut_body(cut):
    return execute_body(E2_BODY)[:len(execute_body(E2_BODY)) - len(E2_BODY) + cut]


def bad_utf8_body(bad):
    """A body whose `note` cell holds the bytes `bad`; returns (chunk bytes, body offset of `bad`)."""
    prefix = b'Image,DestinationPort,note,__mv_Image,__mv_DestinationPort,__mv_note\nrundll32.exe,80,"ok '
    return execute_body(prefix + bad + b' end",,,\n'), len(prefix)


def ok(requests, records=None):
    """A clean run: exit 0, one reply per request; `records` = the _serials expected back, in order."""
    return {"error": None, "requests": requests, "records": records}


def err(message, replies_before):
    """Fails with exactly `message`; `replies_before` good replies (the getinfo reply counts) come first.
    replies_before == 0 means getinfo itself failed: the one reply is the getinfo reply with the ERROR."""
    return {"error": message, "replies_before": replies_before}


def chunk_error(number, what):
    return "classifyport: splunkd's chunk %d %s" % (number, what)


# name: (the bad bytes put in a cell, where in them decoding fails, the bytes the message shows)
BAD_UTF8 = {
    "lone-continuation-byte": (b"\x80", 0, "0x80"),
    "byte-ff": (b"\xff", 0, "0xff"),
    "truncated-sequence": (b"\xe2\x82", 0, "0xe2 0x82"),
    "overlong-slash": (b"\xc0\xaf", 0, "0xc0"),
    "encoded-lone-surrogate": (b"\xed\xa0\x80", 0, "0xed"),    # what a WTF-8/CESU-8 writer makes of U+D800
    "latin-1-text": ("Gr\u00fc\u00dfe".encode("latin-1"), 2, "0xfc"),
}


def _bad_utf8_cases():
    cases = {}
    for name, (bad, offset, shown) in BAD_UTF8.items():
        chunk, at = bad_utf8_body(bad)
        body_at = at + offset
        input_at = len(G + E1) + len(chunk) - len(body_of(chunk)) + body_at
        message = chunk_error(3, "is not valid UTF-8 at byte %d of its body (byte %d of the input: %s); "
                                 "classifyport stops rather than alter the data" % (body_at, input_at, shown))
        cases["invalid-utf8-" + name] = (G + E1 + chunk + FINAL, err(message, 2))
    return cases


CASES = {
    # ---- input ends early
    "eof-before-getinfo": (b"", err("classifyport: splunkd's input ended before its getinfo chunk", 0)),
    "eof-in-getinfo-header": (G[:12], err("classifyport: splunkd's input ended inside the header of chunk 1 "
                                          "(after 12 bytes: b'chunked 1.0,')", 0)),
    "eof-in-getinfo-metadata": (G[:G.index(b"\n") + 31],
                                err(chunk_error(1, "ended after 30 of %d metadata bytes"
                                                % (len(G) - G.index(b"\n") - 1)), 0)),
    "eof-after-getinfo": (G, ok(1, [])),
    "eof-in-execute-header": (G + E1 + E2[:13], err("classifyport: splunkd's input ended inside the header of "
                                                    "chunk 3 (after 13 bytes: b'chunked 1.0,3')", 2)),
    "eof-in-execute-metadata": (G + E1 + E2[:E2.index(b"\n") + 10],
                                err(chunk_error(3, "ended after 9 of 37 metadata bytes"), 2)),
    "eof-in-body-at-row-end": (G + E1 + cut_body(CUT_AT_ROW),
                               err(chunk_error(3, "ended after %d of %d body bytes" % (CUT_AT_ROW, len(E2_BODY))), 2)),
    "eof-in-body-in-quotes": (G + E1 + cut_body(CUT_IN_QUOTES),
                              err(chunk_error(3, "ended after %d of %d body bytes"
                                              % (CUT_IN_QUOTES, len(E2_BODY))), 2)),
    "eof-in-body-in-character": (G + E1 + cut_body(CUT_IN_CHAR),
                                 err(chunk_error(3, "ended after %d of %d body bytes"
                                                 % (CUT_IN_CHAR, len(E2_BODY))), 2)),
    "eof-in-first-body-byte": (G + E1[:E1.index(b"}") + 1],
                               err(chunk_error(2, "ended after 0 of %d body bytes" % len(body_of(E1))), 1)),
    "absurd-body-length": (G + b'chunked 1.0,37,999999999999999999\n{"action":"execute","finished":false}abc',
                           err(chunk_error(2, "ended after 3 of 999999999999999999 body bytes"), 1)),
    "eof-without-finished": (G + E1 + E2, ok(3, ["0", "1", "2"])),
    # ---- malformed headers
    "header-version-2": (G + b"chunked 2.0,2,0\n{}" + FINAL,
                         err(chunk_error(2, "(input byte %d) has a malformed header b'chunked 2.0,2,0\\n'; expected "
                                            "'chunked 1.0,<metadata bytes>,<body bytes>'" % len(G)), 1)),
    "header-negative-length": (G + b"chunked 1.0,-2,0\n{}" + FINAL,
                               err(chunk_error(2, "(input byte %d) has a malformed header b'chunked 1.0,-2,0\\n'; "
                                                  "expected 'chunked 1.0,<metadata bytes>,<body bytes>'" % len(G)), 1)),
    "header-blank-line": (G + E1 + b"\n" + FINAL,
                          err(chunk_error(3, "(input byte %d) has a malformed header b'\\n'; expected "
                                             "'chunked 1.0,<metadata bytes>,<body bytes>'" % len(G + E1)), 2)),
    "header-binary-garbage": (G + b"\x00\xff" * 3000,
                              err(chunk_error(2, "(input byte %d) has no line end in its first 4096 bytes, so no "
                                                 "chunk header" % len(G)), 1)),
    "getinfo-header-garbage": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                               err("classifyport: splunkd's chunk 1 (input byte 0) has a malformed header "
                                   "b'GET / HTTP/1.1\\r\\n'; expected 'chunked 1.0,<metadata bytes>,<body bytes>'", 0)),
    # ---- metadata
    "metadata-not-json": (G + raw_chunk(b"hello") + FINAL,
                          err("classifyport: the metadata of splunkd's chunk 2 is not JSON "
                              "(Expecting value at character 0)", 1)),
    "metadata-empty": (G + raw_chunk(b"") + FINAL,
                       err("classifyport: the metadata of splunkd's chunk 2 is not JSON "
                           "(Expecting value at character 0)", 1)),
    "metadata-cut-json": (G + raw_chunk(b'{"action":"execute",') + FINAL,
                          err("classifyport: the metadata of splunkd's chunk 2 is not JSON "
                              "(Expecting property name enclosed in double quotes at character 20)", 1)),
    "metadata-json-list": (G + raw_chunk(b'["execute"]') + FINAL,
                           err("classifyport: the metadata of splunkd's chunk 2 is not a JSON object", 1)),
    "metadata-invalid-utf8": (G + raw_chunk(b'{"action":"\xff"}') + FINAL,
                              err("classifyport: the metadata of splunkd's chunk 2 is not valid UTF-8 at byte 11", 1)),
    "getinfo-metadata-not-json": (raw_chunk(b"{'action': 'getinfo'}"),
                                  err("classifyport: the metadata of splunkd's chunk 1 is not JSON (Expecting "
                                      "property name enclosed in double quotes at character 1)", 0)),
    # ---- actions in the wrong place
    "execute-before-getinfo": (E1 + FINAL, err("classifyport: splunkd's first chunk must be getinfo, "
                                               "not action 'execute'", 0)),
    "second-getinfo": (G + E1 + G + FINAL, err(chunk_error(3, "is a second getinfo; getinfo comes once, first"), 2)),
    "execute-without-action": (G + raw_chunk(b'{"finished":true}'),
                               err(chunk_error(2, "has action None; expected execute"), 1)),
    "unknown-action": (G + raw_chunk(b'{"action":"cancel"}'), err(chunk_error(2, "has action 'cancel'; "
                                                                                 "expected execute"), 1)),
    "getinfo-with-body": (raw_chunk(getinfo()[getinfo().index(b"\n") + 1:], b"a,b\n1,2\n"),
                          err("classifyport: splunkd's getinfo chunk declares 8 body bytes; it must have none", 0)),
    # ---- getinfo keys
    "getinfo-without-optional-keys": (getinfo_without("session_key", "splunkd_uri", "command", "maxresultrows")
                                      + E1 + E2 + FINAL, ok(4, ["0", "1", "2"])),
    "getinfo-minimal": (minimal_getinfo() + E1 + FINAL, ok(3, ["0", "1"])),
    "getinfo-without-dispatch-dir": (minimal_getinfo(dispatch_dir=None) + E1 + FINAL,
                                     err("classifyport: splunkd's getinfo searchinfo.dispatch_dir is missing or not "
                                         "a string", 0)),
    "getinfo-args-not-a-list": (minimal_getinfo(args="mode=annotate") + E1 + FINAL,
                                err("classifyport: splunkd's getinfo searchinfo.args is not a list of strings: "
                                    "'mode=annotate'", 0)),
    "getinfo-bad-earliest-time": (minimal_getinfo(earliest_time="yesterday") + E1 + FINAL,
                                  err("classifyport: splunkd's getinfo searchinfo.earliest_time is missing or not a "
                                      "number: 'yesterday'", 0)),
    "getinfo-without-searchinfo": (raw_chunk(b'{"action":"getinfo","preview":false}'),
                                   err("classifyport: splunkd's getinfo has no searchinfo object", 0)),
    # ---- legal but unusual conversations
    "finished-with-data": (G + execute(RECORDS, finished=True), ok(2, ["0", "1"])),
    "finished-with-data-after-chunks": (G + E2 + execute(RECORDS, finished=True), ok(3, ["2", "0", "1"])),
    "execute-after-finished": (G + execute(RECORDS, finished=True) + E2, ok(3, ["0", "1", "2"])),
    "preview-search": (getinfo_without(preview=True) + E1 + E2 + FINAL, ok(4, ["0", "1", "2"])),
    "empty-execute-chunks": (G + execute([]) + E1 + execute([]) + FINAL, ok(5, ["0", "1"])),
    "header-crlf": (G + E1.replace(b"\n", b"\r\n", 1) + FINAL, ok(3, ["0", "1"])),   # splunklib's pattern allows it
}
CASES.update(_bad_utf8_cases())


def _plan():
    """[(case, interpreter label)] to run."""
    if FULL_MATRIX:
        return [(case, label) for case in sorted(CASES) for label, _ in INTERPRETERS]
    splunk = [label for label, _ in INTERPRETERS if label != "default"] or ["default"]
    return [(case, splunk[index % len(splunk)]) for index, case in enumerate(sorted(CASES))]


PLAN = _plan()


def converse(stdin, python):
    try:
        proc = subprocess.run([python, scpv2.COMMAND], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=TIMEOUT, cwd=os.path.dirname(scpv2.COMMAND))
    except subprocess.TimeoutExpired:
        return "hung: no exit within %d s" % TIMEOUT
    return proc


@pytest.fixture(scope="module")
def runs():
    """{(case, interpreter label): CompletedProcess}, run a few at a time."""
    paths = dict(INTERPRETERS)
    jobs = {(name, label): (CASES[name][0], paths[label]) for name, label in PLAN}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(converse, data, path) for key, (data, path) in jobs.items()}
    return {key: future.result() for key, future in futures.items()}


def messages(metadata, level=None):
    found = (metadata.get("inspector") or {}).get("messages", [])
    return [text for msg_level, text in found if level is None or msg_level == level]


def check_run(proc, expect):
    assert not isinstance(proc, str), proc
    stdout, stderr = proc.stdout, proc.stderr.decode("utf-8", "replace")
    try:
        replies = scpv2.read_chunks(stdout, strict=True)
    except ValueError as error:
        pytest.fail("stdout is not complete chunks: %s\n%r" % (error, stdout[-500:]))
    assert REPLACEMENT not in stdout, "a byte was replaced with U+FFFD"
    assert "Traceback" not in stderr, stderr[-2000:]
    assert replies, "no reply at all (exit %s, stderr %r)" % (proc.returncode, stderr[-500:])
    first, body = replies[0]
    assert first.get("type") == "streaming" and body == "", replies[0]
    errors = [text for meta, _ in replies for text in messages(meta, "ERROR")]
    if expect["error"] is None:
        assert proc.returncode == 0, stderr[-2000:]
        assert errors == [] and stderr == "", (errors, stderr)
        assert len(replies) == expect["requests"], [meta for meta, _ in replies]
        records = [record for _, text in replies[1:] for record in scpv2.decode_records(text, strict=True)]
        assert [record.get("_serial") for record in records] == expect["records"]
        return replies, records
    message = expect["error"]
    assert proc.returncode == 1
    assert errors == [message], errors
    assert not TRACEBACK.search(message)
    assert stderr == message + "\n", stderr[-2000:]           # search.log: the same line, no traceback
    before = expect["replies_before"]
    if before == 0:
        assert replies == [({"type": "streaming", "inspector": {"messages": [["ERROR", message]]}}, "")], replies
        return replies, []
    assert len(replies) == before + 1, [meta for meta, _ in replies]
    assert replies[-1] == ({"inspector": {"messages": [["ERROR", message]]}, "finished": True}, ""), replies[-1]
    for meta, text in replies[1:-1]:
        assert messages(meta, "ERROR") == [] and meta.get("finished") is False
        scpv2.check_reply_body(text)
    return replies, [record for _, text in replies[1:-1] for record in scpv2.decode_records(text, strict=True)]


@pytest.mark.parametrize("case, interpreter", PLAN)
def test_fault(runs, case, interpreter):
    check_run(runs[case, interpreter], CASES[case][1])


def run_of(runs, case):
    """The (first) run of `case`."""
    return next(runs[key] for key in PLAN if key[0] == case)


def test_splunk_interpreters_are_tried():
    assert [label for label, _ in INTERPRETERS] == ["default", "3.9", "3.13"]
    assert {label for _, label in PLAN} >= {"3.9", "3.13"}


def test_records_before_a_fault_come_back_whole(runs):
    """The chunks answered before a fault are answered in full and unchanged; the cut chunk gets no records."""
    for case in ("eof-in-body-at-row-end", "eof-in-body-in-quotes", "eof-in-body-in-character"):
        replies, records = check_run(run_of(runs, case), CASES[case][1])
        assert [record["_serial"] for record in records] == ["0", "1"]
        assert records[0]["_raw"] == RECORDS[0]["_raw"] and records[1]["_raw"] == RECORDS[1]["_raw"]
        assert records[0]["SuspicionLabel"] == "ScriptInterpreter"


def test_legal_unusual_conversations_lose_nothing(runs):
    """finished with data (what Splunk 6.3 sends), chunks after finished, preview, lean getinfo: every record
    comes back with its fields unchanged and the reply's finished flag mirrors the request's."""
    for case in ("finished-with-data", "finished-with-data-after-chunks", "execute-after-finished",
                 "preview-search", "getinfo-without-optional-keys", "getinfo-minimal"):
        stdin = CASES[case][0]
        replies, records = check_run(run_of(runs, case), CASES[case][1])
        requests = scpv2.read_chunks(stdin, strict=True)
        assert [meta.get("finished", False) for meta, _ in replies[1:]] == \
            [meta.get("finished", False) for meta, _ in requests[1:]], case
        sent = {record["_serial"]: record for record in RECORDS + MORE}
        for record in records:
            for name, value in sent[record["_serial"]].items():
                assert record[name] == value, (case, name)
        assert {r["_serial"]: r["SuspicionLabel"] for r in records} == \
            {k: v for k, v in {"0": "ScriptInterpreter", "1": "", "2": "LOLBin"}.items() if k in
             {r["_serial"] for r in records}}, case


def test_preview_answers_like_a_normal_search(runs):
    preview = check_run(run_of(runs, "preview-search"), CASES["preview-search"][1])[1]
    normal = check_run(run_of(runs, "eof-without-finished"), CASES["eof-without-finished"][1])[1]
    assert preview == normal


def test_invalid_utf8_is_not_passed_on_altered(runs):
    """The SDK would decode the body with errors="replace" and send U+FFFD back as if it were the user's data;
    the command stops instead, having answered every earlier chunk."""
    for name in BAD_UTF8:
        replies, records = check_run(run_of(runs, "invalid-utf8-" + name), CASES["invalid-utf8-" + name][1])
        assert [record["_serial"] for record in records] == ["0", "1"]


@pytest.mark.parametrize("when", ["before-getinfo-reply", "after-getinfo-reply"])
def test_stdout_closed_by_splunkd(python, when):
    """splunkd gone (its end of our stdout closed, e.g. the search was cancelled): the command ends within the
    timeout with exit status 1 and one line in search.log, no traceback."""
    proc = subprocess.Popen([python, scpv2.COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=os.path.dirname(scpv2.COMMAND))
    try:
        if when == "after-getinfo-reply":
            proc.stdin.write(G)
            proc.stdin.flush()
            header = proc.stdout.readline()
            assert proc.stdout.read(int(header.split(b",")[1])) == b'{"type":"streaming"}'
        proc.stdout.close()
        try:
            proc.stdin.write(G[:0] if when == "after-getinfo-reply" else G)
            proc.stdin.write(E1 * 50 + FINAL)
            proc.stdin.close()
        except BrokenPipeError:
            pass                                  # the command already ended
        stderr = proc.stderr.read()
        proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("the command hung after splunkd closed its stdout")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert stderr == b"classifyport: splunkd closed the pipe it reads replies from; stopping\n", stderr[-2000:]


WRAPPER = """
import runpy, sys
sys.path.insert(0, {bin!r})
import portclassify.classifier, portclassify.csvchunk

def boom(*args, **kwargs):
    raise {error}

{target} = boom
sys.argv = [{command!r}]
runpy.run_path({command!r}, run_name="__main__")
"""


@pytest.mark.parametrize("interpreter", ["3.9", "3.13"])
@pytest.mark.parametrize("target, error, message, replies_before", [
    pytest.param("portclassify.classifier.Settings.__init__", "RuntimeError('the lists are gone')",
                 "classifyport could not start: RuntimeError: the lists are gone", 0, id="at-getinfo"),
    pytest.param("portclassify.csvchunk.ChunkClassifier.process", "KeyError('boom')",
                 "classifyport stopped on an unexpected KeyError: 'boom'", 1, id="at-execute"),
])
def test_unexpected_error_is_one_clean_message(tmp_path, interpreter, target, error, message, replies_before):
    """A bug of the command's own (simulated by replacing a function with one that raises) reaches splunkd as one
    ERROR naming the error, without traceback, file or line, in the reply splunkd waits for; the traceback goes to
    search.log (stderr) only."""
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER.format(bin=os.path.dirname(scpv2.COMMAND), command=scpv2.COMMAND, target=target,
                                      error=error))
    proc = subprocess.run([dict(INTERPRETERS)[interpreter], str(wrapper)], input=G + E1 + FINAL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    replies = scpv2.read_chunks(proc.stdout, strict=True)
    assert proc.returncode == 1
    assert not TRACEBACK.search(message)
    if replies_before == 0:
        assert replies == [({"type": "streaming", "inspector": {"messages": [["ERROR", message]]}}, "")]
    else:
        assert replies == [({"type": "streaming"}, ""),
                           ({"inspector": {"messages": [["ERROR", message]]}, "finished": True}, "")]
    assert b"Traceback" in proc.stderr and message.encode() in proc.stderr
