"""Read a lookup CSV the way an admin may have saved it (Lookup Editor, Excel, a text editor).

Tolerated, because Splunk's Lookup Editor, Excel and text editors produce them: a UTF-8 byte
order mark, CRLF or LF line ends, upper-case or padded column names, padded or quoted values,
blank lines (before the header too), extra columns, trailing empty cells.

Refused, each with the file, the row (as a spreadsheet numbers it: the header is row 1) and the
problem: a file over MAX_BYTES or with more than MAX_ROWS data rows, a binary file (a NUL
byte, an Excel workbook saved with a .csv name), UTF-16 text, bytes that are not UTF-8 (Excel's
"CSV (Comma delimited)" writes Windows-1252), a column name listed twice, a row with more
filled cells than the header has columns (an unquoted comma), a double quote never closed.

A cell is always literal text: nothing here or in the loaders evaluates it, so a
formula-looking value such as =cmd|' /C calc'!A0 is a string like any other (the loaders
then judge whether it is a valid process name, CIDR, port...).
"""
import csv
import io
import os
import re
import stat

# A lookup is loaded into memory on every indexer for every search: refuse anything bigger
# than this before reading it. A 100,000-row allowlist is about 8 MB; Splunk itself starts
# indexing a lookup on disk above 25 MB (limits.conf [lookup] max_memtable_bytes).
MAX_BYTES = 32 * 1024 * 1024
# Data rows (not counting the header and blank lines) read from one lookup.
MAX_ROWS = 200000

# Characters that cannot come from a valid UTF-8 file: surrogateescape decoding turns each
# undecodable byte into U+DC80..U+DCFF, and a NUL byte is replaced with U+DC00 before parsing.
_BAD_CHAR = re.compile("[\udc00-\udcff]")
_NUL = "\udc00"
# Characters of a bad cell quoted in a message.
_SHOWN = 60

_SIGNATURES = (
    (b"PK\x03\x04", "is a ZIP archive (an Excel .xlsx workbook?), not CSV text"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "is an Excel 97-2003 .xls workbook, not CSV text"),
    (b"\xff\xfe", "is UTF-16 text (Excel's \"Unicode Text\"), not UTF-8"),
    (b"\xfe\xff", "is UTF-16 text, not UTF-8"),
)
_SAVE_AS = "save it as CSV UTF-8 (Excel: File > Save As > CSV UTF-8 (Comma delimited))"


class LookupProblem(Exception):
    """A lookup file that cannot be used; the message names the file, the row and the problem."""

    def __init__(self, filename, row, problem):
        self.filename, self.row, self.problem = filename, row, problem
        where = filename if row is None else "%s row %d" % (filename, row)
        super().__init__("%s: %s" % (where, problem))


def _read_text(path, filename):
    """The file's text, refusing what is not a small regular UTF-8 text file.

    Returns (text, clean): clean is False when the text holds the markers of
    undecodable bytes or NUL bytes, which read_rows then locates by row.
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise LookupProblem(filename, None, "is not a regular file")
        if info.st_size > MAX_BYTES:
            raise LookupProblem(filename, None, "is %d bytes; classifyport reads lookups of at most %d bytes "
                                                "(%d MiB): is it the right file?"
                                % (info.st_size, MAX_BYTES, MAX_BYTES // 1048576))
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise LookupProblem(filename, None, "cannot be read (%s)" % (error.strerror or error))
    if len(data) > MAX_BYTES:
        raise LookupProblem(filename, None, "is more than %d bytes; classifyport reads lookups of at most "
                                            "%d MiB: is it the right file?" % (MAX_BYTES, MAX_BYTES // 1048576))
    for signature, problem in _SIGNATURES:
        if data.startswith(signature):
            raise LookupProblem(filename, None, "%s: %s" % (problem, _SAVE_AS))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return text, True
    return data.decode("utf-8-sig", "surrogateescape").replace("\x00", _NUL), False


def _check_cells(filename, number, cells, header):
    """Name the first NUL or non-UTF-8 byte in a row (only called for files that have one)."""
    for index, cell in enumerate(cells):
        found = _BAD_CHAR.search(cell)
        if found is None:
            continue
        column = header[index] if header is not None and index < len(header) and header[index] else \
            "column %d" % (index + 1)
        shown = cell.replace(_NUL, "\\x00").encode("utf-8", "surrogateescape")
        shown = shown.decode("ascii", "backslashreplace")[:_SHOWN]
        if found.group() == _NUL:
            raise LookupProblem(filename, number, "%s holds a NUL byte (%r): a binary file is not a lookup; %s"
                                % (column, shown, _SAVE_AS))
        byte = ord(found.group()) - 0xDC00
        raise LookupProblem(filename, number, "%s is not UTF-8 text: byte 0x%02X in %r (Excel's \"CSV (Comma "
                                              "delimited)\" writes Windows-1252); %s"
                            % (column, byte, shown, _SAVE_AS))


def read_rows(path, filename, required):
    """Yield (row_number, {column: value}) for each non-blank data row.

    Column names are compared stripped and lower-cased; values are stripped.
    Row numbers count CSV records, the header being row 1 (a value quoted
    across two lines is one row), as a spreadsheet shows them.
    """
    text, clean = _read_text(path, filename)
    pending = None
    for number, cells, values in _records(text, clean, filename, required):
        if pending is not None:
            yield pending[0], pending[1]
        pending = number, values, cells
    if pending is not None:
        number, values, cells = pending
        # The last row swallowed line breaks: a double quote opened and never closed?
        if any("\n" in cell or "\r" in cell for cell in cells) and _unclosed_quote(text):
            raise LookupProblem(filename, number, "a double quote is never closed: the rest of the file was "
                                                  "read as one value")
        yield number, values


def _records(text, clean, filename, required):
    reader = csv.reader(io.StringIO(text, newline=""))
    header, width, number, rows = None, 0, 0, 0
    try:
        for number, cells in enumerate(reader, start=1):
            if not clean:
                _check_cells(filename, number, cells, header)
            if not "".join(cells).strip():
                continue
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                missing = [name for name in required if name not in header]
                if missing:
                    raise LookupProblem(filename, number, "missing column %s (header is: %s)"
                                        % (", ".join(missing), ",".join(header)))
                twice = [name for name in required if header.count(name) > 1]
                if twice:
                    raise LookupProblem(filename, number, "column %s is named twice in the header" % twice[0])
                width = len(header)
                continue
            rows += 1
            if rows > MAX_ROWS:
                raise LookupProblem(filename, number, "more than %d data rows: classifyport reads at most %d "
                                                      "rows from a lookup" % (MAX_ROWS, MAX_ROWS))
            if len(cells) != width:
                if len(cells) > width and "".join(cells[width:]).strip():
                    raise LookupProblem(filename, number, "%d cells but the header has %d columns: a value that "
                                                          "holds a comma must be in double quotes"
                                        % (len(cells), width))
                cells = (cells + [""] * width)[:width]
            # dict() keeps the last of two columns with one name, as a loop would.
            yield number, cells, dict(zip(header, [cell.strip() for cell in cells]))
    except csv.Error as error:
        raise LookupProblem(filename, number + 1, "is not valid CSV (%s; an unclosed double quote?)" % error)
    if header is None:
        raise LookupProblem(filename, None, "is empty: it needs the header %s" % ",".join(required))


def _unclosed_quote(text):
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
            pass
    except csv.Error as error:
        return "unexpected end of data" in str(error)
    return False
