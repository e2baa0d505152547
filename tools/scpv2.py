"""The splunkd side of Search Command Protocol v2 (chunked), for tests, the demo and replays.

splunkd starts the command with no arguments, sends a `getinfo` chunk (the
search's arguments in searchinfo.args), reads one reply, then sends `execute`
chunks of CSV, one reply per request, ending with `finished: true`. Each chunk
is `chunked 1.0,<metadata bytes>,<body bytes>\\n` + JSON metadata + body.

The CSV splunkd writes (see ../shared/data/scpv2-recordings) has `\\n` line
ends, every plain column first and then one `__mv_<name>` column per field,
and quotes every non-empty cell that is not plain ASCII letters and digits.
A multivalue field's plain cell holds its values joined by `\\n`; its `__mv_`
cell holds `$a$;$b$` with `$` doubled. The SDK's replies pair each field with
its `__mv_` column and end rows with `\\r\\n`.
"""
import csv
import io
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = os.path.join(ROOT, "bin", "classifyport.py")

# The SDK reads cells of up to 10 MB (SPL-12117); read what it writes.
csv.field_size_limit(max(csv.field_size_limit(), 10485760))

_HEADER = re.compile(rb"chunked 1\.0,(0|[1-9][0-9]*),(0|[1-9][0-9]*)\n")
_PLAIN_CELL = re.compile(r"[A-Za-z0-9]+\Z")


def encode_chunk(metadata, body=b""):
    meta = json.dumps(metadata, separators=(",", ":")).encode("utf-8")
    if isinstance(body, str):
        body = body.encode("utf-8")
    return b"chunked 1.0,%d,%d\n" % (len(meta), len(body)) + meta + body


def getinfo_metadata(args, app_root=ROOT, dispatch_dir=None, search="| classifyport", **extra):
    """The getinfo request splunkd sends, shaped like the recorded transcripts."""
    from urllib.parse import quote
    info = {
        "args": list(args), "raw_args": list(args),
        "dispatch_dir": dispatch_dir or os.path.join(app_root, "build", "dispatch"),
        "earliest_time": "0", "latest_time": "0",
        "search": quote(search), "session_key": "test-session-key",
        "splunkd_uri": "https://127.0.0.1:8089", "splunk_version": "9.3.0",
        "app": "classifyport", "owner": "admin", "username": "admin", "sid": "1700000000.1",
        "command": "classifyport", "maxresultrows": 50000,
    }
    info.update(extra)
    return {"action": "getinfo", "preview": False, "searchinfo": info}


def _mv_encode(values):
    return "$" + "$;$".join(str(v).replace("$", "$$") for v in values) + "$"


def _splunkd_cell(value):
    """A CSV cell as splunkd quotes it: bare only when empty or plain ASCII letters and digits."""
    if not value or _PLAIN_CELL.match(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def encode_records(records, fieldnames=None):
    """CSV body as splunkd writes it: every plain column, then a __mv_ column for every field.

    A value that is a list or tuple of two or more items is a multivalue field
    (plain cell: the values joined by newlines; __mv_ cell: $a$;$b$); a
    one-item list is sent as its single value. A field a record lacks is empty.
    """
    if not records:
        return ""
    if fieldnames is None:
        fieldnames = []
        for record in records:
            for name in record:
                if name not in fieldnames:
                    fieldnames.append(name)
    fieldnames = list(fieldnames)
    lines = [",".join(_splunkd_cell(str(name)) for name in fieldnames + ["__mv_" + name for name in fieldnames])]
    for record in records:
        plain, multi = [], []
        for name in fieldnames:
            value = record.get(name, "")
            if isinstance(value, (list, tuple)):
                values = [str(v) for v in value]
                plain.append("\n".join(values))
                multi.append(_mv_encode(values) if len(values) > 1 else "")
            else:
                plain.append("" if value is None else str(value))
                multi.append("")
        lines.append(",".join(_splunkd_cell(cell) for cell in plain + multi))
    return "\n".join(lines) + "\n"


def build_input(args, chunks, **getinfo_extra):
    """Bytes splunkd would write: getinfo, one execute chunk per record list, then an empty final chunk."""
    data = [encode_chunk(getinfo_metadata(args, **getinfo_extra))]
    for records in chunks:
        data.append(encode_chunk({"action": "execute", "finished": False}, encode_records(records)))
    data.append(encode_chunk({"action": "execute", "finished": True}))
    return b"".join(data)


def read_chunks(data, strict=False):
    """Split a chunk stream into [(metadata dict, body str)].

    By default blank lines between chunks are skipped (Splunk 6.3's recorded
    output has them) and a header may end in CRLF. With strict=True the data
    must be nothing but chunks: each header exactly `chunked 1.0,<m>,<b>\\n`
    with m > 0, metadata a JSON object, body valid UTF-8, no byte in between
    or after. Raises ValueError on anything else.
    """
    chunks, stream = [], io.BytesIO(data)
    while True:
        offset = stream.tell()
        header = stream.readline()
        if not strict:
            while header in (b"\n", b"\r\n"):
                header = stream.readline()
        if not header:
            return chunks
        if strict:
            match = _HEADER.fullmatch(header)
            if match is None or int(match.group(1)) == 0:
                raise ValueError("bad chunk header %r at byte %d" % (header[:80], offset))
            meta_len, body_len = int(match.group(1)), int(match.group(2))
        else:
            parts = header.decode("ascii").strip().split(",")
            if len(parts) != 3 or not parts[0].startswith("chunked 1.0"):
                raise ValueError("bad chunk header %r" % header[:80])
            meta_len, body_len = int(parts[1]), int(parts[2])
        meta = stream.read(meta_len)
        body = stream.read(body_len)
        if len(meta) != meta_len or len(body) != body_len:
            raise ValueError("truncated chunk after header %r" % header)
        try:
            metadata = json.loads(meta.decode("utf-8")) if meta_len else {}
            text = body.decode("utf-8")
        except ValueError as error:
            raise ValueError("chunk at byte %d: %s" % (offset, error))
        if strict and not isinstance(metadata, dict):
            raise ValueError("chunk at byte %d: metadata is not a JSON object" % offset)
        chunks.append((metadata, text))


def _mv_decode(text):
    """The values of an encoded multivalue cell `$a$;$b$`, `$$` standing for `$`."""
    values, i, n = [], 0, len(text)
    while i < n:
        if text[i] != "$":
            raise ValueError("bad multivalue cell %r" % text)
        j, value = i + 1, []
        while True:
            if j >= n:
                raise ValueError("unterminated multivalue cell %r" % text)
            if text[j] == "$":
                if j + 1 < n and text[j + 1] == "$":
                    value.append("$")
                    j += 2
                    continue
                break
            value.append(text[j])
            j += 1
        values.append("".join(value))
        i = j + 1
        if i < n:
            if text[i] != ";" or i + 1 == n:
                raise ValueError("bad multivalue cell %r" % text)
            i += 1
    return values


class _SdkDialect(csv.Dialect):
    """How splunklib's RecordWriter writes reply bodies (internals.CsvDialect)."""
    delimiter, quotechar, doublequote, skipinitialspace = ",", '"', True, False
    lineterminator, quoting = "\r\n", csv.QUOTE_MINIMAL


def decode_rows(body):
    """(header, rows) of a CSV body; every row must be as wide as the header."""
    if not body:
        return [], []
    reader = csv.reader(io.StringIO(body, newline=""), strict=True)
    header = next(reader)
    rows = list(reader)
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError("CSV row %d has %d cells, the header %d" % (number, len(row), len(header)))
    return header, rows


def check_reply_body(body):
    """Raise ValueError unless `body` is a well-formed reply: strict CSV ending in a line end,
    unique column names, every __mv_ column beside a plain column of its field, every row as
    wide as the header. (The SDK writes field,__mv_field pairs; classifyport passes splunkd's
    own columns through and appends its own, so column order is not checked here.)"""
    if not body:
        return
    if not body.endswith("\n"):
        raise ValueError("reply body does not end with a line end")
    header, rows = decode_rows(body)
    if len(set(header)) != len(header):
        raise ValueError("reply header repeats a column: %r" % header)
    lonely = [name for name in header if name.startswith("__mv_") and name[5:] not in header]
    if lonely:
        raise ValueError("reply has __mv_ columns without their field: %r" % lonely)
    list(csv.reader(io.StringIO(body, newline=""), strict=True))


def decode_records(body, strict=False):
    """Records from a CSV body; a non-empty __mv_ cell replaces its field with the list of values.

    Rows wider or narrower than the header raise ValueError. With strict=True the
    body must also be a well-formed SDK reply (see check_reply_body).
    """
    if strict:
        check_reply_body(body)
    header, rows = decode_rows(body)
    plain, seen = [], set()
    for index, name in enumerate(header):
        if not name.startswith("__mv_") and name not in seen:
            plain.append((index, name))
            seen.add(name)
    multi = [(index, name[5:]) for index, name in enumerate(header) if name.startswith("__mv_")]
    names = [name for _, name in plain]
    records = []
    for row in rows:
        record = dict(zip(names, [row[index] for index, _ in plain]))
        for index, name in multi:
            if row[index]:
                record[name] = _mv_decode(row[index])
        records.append(record)
    return records


def chunk_spans(data):
    """[(start, header_end, meta_end, body_end)] byte offsets of each chunk; blank lines between are skipped."""
    spans, pos = [], 0
    while pos < len(data):
        if data.startswith(b"\n", pos):
            pos += 1
            continue
        if data.startswith(b"\r\n", pos):
            pos += 2
            continue
        end = data.index(b"\n", pos) + 1
        parts = data[pos:end].decode("ascii").strip().split(",")
        if len(parts) != 3 or parts[0] != "chunked 1.0":
            raise ValueError("bad chunk header at byte %d" % pos)
        meta_end = end + int(parts[1])
        body_end = meta_end + int(parts[2])
        if body_end > len(data):
            raise ValueError("truncated chunk at byte %d" % pos)
        spans.append((pos, end, meta_end, body_end))
        pos = body_end
    return spans


def _replace_json_list(text, key, values):
    match = re.search(r'"%s"\s*:\s*\[' % re.escape(key), text)
    if match is None:
        raise ValueError("getinfo metadata has no %s list" % key)
    start = match.end() - 1
    _, end = json.JSONDecoder().raw_decode(text, start)
    return text[:start] + json.dumps(list(values)) + text[end:]


def rewrite_getinfo(data, args, raw_args=None):
    """A recorded splunkd input stream with the getinfo chunk's args and raw_args replaced.

    Only the two lists and the header's metadata length change; every other byte
    (the rest of the metadata, its spacing, every execute chunk) stays as recorded.
    """
    start, header_end, meta_end, _ = chunk_spans(data)[0]
    if start != 0:
        raise ValueError("the stream does not start with a chunk")
    meta = data[header_end:meta_end].decode("utf-8")
    if json.loads(meta).get("action") != "getinfo":
        raise ValueError("the first chunk is not getinfo")
    meta = _replace_json_list(meta, "args", args)
    meta = _replace_json_list(meta, "raw_args", args if raw_args is None else raw_args)
    old_header = data[:header_end].decode("ascii")
    body_len = old_header.strip().split(",")[2]
    meta_bytes = meta.encode("utf-8")
    return b"chunked 1.0,%d,%s\n" % (len(meta_bytes), body_len.encode("ascii")) + meta_bytes + data[meta_end:]


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.chunks = read_chunks(stdout)
        self.getinfo = self.chunks[0][0] if self.chunks else {}
        self.replies = [(meta, decode_records(body)) for meta, body in self.chunks[1:]]
        self.records = [record for _, records in self.replies for record in records]

    def messages(self, level=None):
        found = []
        for meta, _ in self.chunks:
            for msg_level, text in (meta.get("inspector") or {}).get("messages", []):
                if level is None or msg_level == level:
                    found.append(text)
        return found


def run(args=(), chunks=(), python=None, timeout=120, stdin=None, command=COMMAND, **getinfo_extra):
    """Run the command as splunkd does and return its parsed Result."""
    if stdin is None:
        stdin = build_input(args, chunks, **getinfo_extra)
    proc = subprocess.run([python or sys.executable, command], input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          cwd=os.path.dirname(command))
    return Result(proc.returncode, proc.stdout, proc.stderr)


class ProtocolError(AssertionError):
    """The command's replies break what splunkd relies on."""


def _inspector_messages(metadata):
    return [tuple(message) for message in (metadata.get("inspector") or {}).get("messages", [])]


def check_conversation(stdin, result):
    """Check `result` (of run) the way splunkd reads a reply stream; return the request chunks.

    stdout must be nothing but well-formed chunks; the first reply answers getinfo
    with metadata carrying `type` and no body; a command that reports an ERROR at
    getinfo (or exits non-zero there) sends that one reply only; otherwise there is
    exactly one reply per execute request, whose `finished` mirrors the request's,
    whose metadata holds only finished/inspector and whose body is canonical SDK CSV.
    Raises ProtocolError.
    """
    requests = read_chunks(stdin)
    try:
        replies = read_chunks(result.stdout, strict=True)
    except ValueError as error:
        raise ProtocolError("stdout is not clean SCP v2 chunks: %s" % error)
    if not replies:
        raise ProtocolError("no reply to getinfo (exit %s, stderr %r)" % (result.returncode, result.stderr[-2000:]))
    meta, body = replies[0]
    if body:
        raise ProtocolError("the getinfo reply has a body: %r" % body[:200])
    if "type" not in meta:
        raise ProtocolError("the getinfo reply has no type: %r" % meta)
    failed = any(level in ("ERROR", "FATAL") for level, _ in _inspector_messages(meta))
    if failed or (result.returncode != 0 and len(replies) == 1):
        if len(replies) != 1:
            raise ProtocolError("%d chunks after a getinfo ERROR" % (len(replies) - 1))
        return requests
    # A command that fails on a data chunk answers it with an ERROR marked finished and exits
    # non-zero: that reply must be the last one.
    stopped = None
    for number, (reply, _) in enumerate(replies[1:], start=1):
        if any(level in ("ERROR", "FATAL") for level, _ in _inspector_messages(reply)):
            stopped = number
            break
    if stopped is not None:
        if len(replies) != stopped + 1 or result.returncode == 0 or replies[stopped][0].get("finished") is not True:
            raise ProtocolError("execute reply %d reports an ERROR but the command went on (exit %s, %d replies)"
                                % (stopped, result.returncode, len(replies)))
    elif len(replies) != len(requests):
        raise ProtocolError("%d requests got %d replies" % (len(requests), len(replies)))
    for number, ((request, _), (reply, body)) in enumerate(zip(requests[1:], replies[1:]), start=1):
        if set(reply) - {"finished", "inspector"}:
            raise ProtocolError("execute reply %d has unexpected metadata %r" % (number, reply))
        if number == stopped:
            continue
        if reply.get("finished", False) != request.get("finished", False):
            raise ProtocolError("execute reply %d says finished=%r to a request with finished=%r"
                                % (number, reply.get("finished"), request.get("finished")))
        try:
            check_reply_body(body)
        except ValueError as error:
            raise ProtocolError("execute reply %d: %s" % (number, error))
    return requests


def run_strict(args=(), chunks=(), python=None, timeout=120, stdin=None, command=COMMAND, **getinfo_extra):
    """run(), then check_conversation(); the Result also carries the `requests` it answered."""
    if stdin is None:
        stdin = build_input(args, chunks, **getinfo_extra)
    result = run(python=python, timeout=timeout, stdin=stdin, command=command)
    result.requests = check_conversation(stdin, result)
    return result
