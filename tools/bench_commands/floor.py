#!/usr/bin/env python
"""Benchmark yardstick (not shipped): the raw protocol floor, no splunklib.

Speaks Search Command Protocol v2 with the standard library only: answers
getinfo with {"type": "streaming"}, then for each execute chunk parses the CSV
body with csv.reader and writes every row back with csv.writer, in the shape the
SDK replies (each field followed by its __mv_ column, CRLF rows, minimal
quoting), one reply per request. Records are lists of cells, never dicts: this is
the least any Python command must spend to move a record through the protocol.
"""
import csv
import io
import json
import re
import sys
from operator import itemgetter

csv.field_size_limit(10485760)  # as the SDK: cells of up to 10 MB
HEADER = re.compile(rb"chunked\s+1.0\s*,\s*(\d+)\s*,\s*(\d+)\s*\n")


class Dialect(csv.Dialect):
    delimiter, quotechar, doublequote, skipinitialspace = ",", '"', True, False
    lineterminator, quoting = "\r\n", csv.QUOTE_MINIMAL


def read_chunk(stream):
    header = stream.readline()
    if not header:
        return None
    match = HEADER.match(header)
    if match is None:
        raise ValueError("bad chunk header %r" % header[:80])
    meta_length, body_length = int(match.group(1)), int(match.group(2))
    metadata = json.loads(stream.read(meta_length).decode("utf-8")) if meta_length else {}
    body = stream.read(body_length).decode("utf-8", errors="replace") if body_length else ""
    return metadata, body


def write_chunk(stream, metadata, body=""):
    meta = json.dumps(metadata, separators=(",", ":")).encode("utf-8")
    data = body.encode("utf-8")
    stream.write(b"chunked 1.0,%d,%d\n" % (len(meta), len(data)))
    stream.write(meta)
    stream.write(data)
    stream.flush()


def transform(body):
    """The body's rows, columns reordered to field,__mv_field pairs (an empty __mv_ cell where one is absent)."""
    if not body:
        return ""
    reader = csv.reader(io.StringIO(body, newline=""), dialect=Dialect)
    try:
        header = next(reader)
    except StopIteration:
        return ""
    width = len(header)
    index = {name: i for i, name in reversed(list(enumerate(header)))}
    names = [name for i, name in enumerate(header) if not name.startswith("__mv_") and index[name] == i]
    order, out_header = [], []
    for name in names:
        order += [index[name], index.get("__mv_" + name, width)]
        out_header += [name, "__mv_" + name]
    out = io.StringIO()
    writer = csv.writer(out, dialect=Dialect)
    writer.writerow(out_header)
    pick = itemgetter(*order)
    if max(order) < width:
        writer.writerows(map(pick, reader))
    else:  # some field has no __mv_ column: pad with one empty cell
        writer.writerows(pick(row + [""]) for row in reader)
    return out.getvalue()


def main(stdin, stdout):
    request = read_chunk(stdin)
    if request is None or request[0].get("action") != "getinfo":
        write_chunk(stdout, {"type": "streaming", "finished": True,
                             "inspector": {"messages": [["ERROR", "expected a getinfo chunk"]]}})
        return 1
    write_chunk(stdout, {"type": "streaming"})
    while True:
        request = read_chunk(stdin)
        if request is None:
            return 0
        metadata, body = request
        finished = bool(metadata.get("finished", False))
        write_chunk(stdout, {"finished": finished}, transform(body))
        if finished:
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.stdin.buffer, sys.stdout.buffer))
