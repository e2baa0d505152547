"""Classify one SCP v2 chunk body, CSV in and CSV out, without building a dict per record.

splunkd sends each execute chunk as CSV: a header of field names, where a
multivalue field `x` also has a `__mv_x` column (`$a$;$b$`, `$` doubled). The
SDK turns every row into an OrderedDict and back; this module passes each
record's text through untouched and appends the output columns (or, when the
input already has output fields, rewrites each row with them in place).
Decoded, the records are the ones the SDK's record path produces.

Two readers write the same bytes: _append_matched reads a well-formed chunk with
one regular expression per header, capturing only the cells the classifier
reads; _append parses anything (ragged rows, stray quotes, bare CRs) with the
csv module. tests/test_csvchunk.py holds both to the same output.
"""
import csv
import io
import itertools
import operator
import re
import sys

from . import bounded
from .bounded import remember
from .classifier import OUTPUT_FIELDS, unlabelled

# Python < 3.11's csv reader rejects a NUL character anywhere in its input.
_NUL_BREAKS_CSV = sys.version_info < (3, 11)


class SplunkCsv(csv.Dialect):
    """The dialect splunklib reads and writes (searchcommands.internals.CsvDialect)."""
    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\r\n"
    quoting = csv.QUOTE_MINIMAL


# One value of an encoded multivalue cell, as the SDK matches it (SearchCommand._encoded_value).
_MV_VALUE = re.compile(r"\$(?P<item>(?:\$\$|[^$])*)\$(?:;|$)")


def decode_mv(cell):
    """The values of a `$a$;$b$` multivalue cell."""
    return [match.replace("$$", "$") for match in _MV_VALUE.findall(cell)]


def encode_mv(values):
    return "$" + "$;$".join(value.replace("$", "$$") for value in values) + "$"


class ChunkClassifier:
    """Applies a Classifier to CSV chunk bodies and writes replies the way the SDK would."""

    def __init__(self, classifier):
        self.classifier = classifier
        # Bounded caches for _tail: the reply text of output values 2-11, and quoted cells.
        self._rests, self._cells = {}, {}
        # _append_matched's caches for the unlisted-process shortcut, by cell text.
        self._images, self._ports, self._dests, self._unlabelled = {}, {}, {}, {}

    def process(self, body):
        """Return (reply CSV text, number of records written) for one chunk body: its text, or a
        list of pieces of it that each end at a line end (the command reads large bodies in
        pieces, so that no body-sized block is allocated per chunk; see bin/classifyport.py)."""
        if body.__class__ is list:
            if len(body) > 1:
                done = self._pieces(body)
                if done is not None:
                    return done
            body = "".join(body)
        if not body:
            return "", 0
        if _NUL_BREAKS_CSV and "\x00" in body:
            return self._without_nul(body)
        header, start = _header(body)
        if header is None:
            return "", 0
        if _plain_input(header):
            if start is not None and header:
                matched = self._matched([body], header, start)
                if matched is not None:
                    return matched
            return self._append(body)
        return self._rewrite(body)

    def _pieces(self, pieces):
        """process() of pieces with the matched reader, or None when it must read them as one
        body. A piece that ends inside a record (inside a quoted cell) has a record the reader
        cannot match, so it declines; when every piece matches, the records are the whole body's:
        a record's match depends on its own text alone (the cell patterns are unambiguous)."""
        if _NUL_BREAKS_CSV and any("\x00" in piece for piece in pieces):
            return None
        header, start = _header(pieces[0])
        if not header or start is None or not _plain_input(header):
            return None
        return self._matched(pieces, header, start)

    def _matched(self, pieces, header, start):
        """_append_matched, the missing-field counts left as they were when it declines (the
        reader that takes over counts the chunk's missing fields again)."""
        missing = dict(self.classifier.missing)
        matched = self._append_matched(pieces, header, start)
        if matched is None:
            self.classifier.missing = missing
        return matched

    def _without_nul(self, body):
        """Python < 3.11's csv module rejects a NUL anywhere in its input ("line contains NUL").
        Stand a private-use character no cell contains in for each NUL, and swap it back in the
        reply, so an event with a NUL keeps it and the search does not fail."""
        for code in range(0xF8FF, 0xE000, -1):
            stand_in = chr(code)
            if stand_in not in body:
                break
        else:  # pragma: no cover - a body holding all 6,400 private-use characters
            raise ValueError("classifyport cannot read a chunk that has NUL characters and every "
                             "private-use character (Python < 3.11's csv module rejects NUL)")
        text, count = self.process(body.replace("\x00", stand_in))
        return text.replace(stand_in, "\x00"), count

    def _row_classifier(self, plain, multi, empty, quoted=False):
        """A function from a row (list of cells, cell `empty` always "") to the classifier's
        output values, or None to drop the row. `plain` and `multi` map field names to the
        positions of their plain and __mv_ cells. With `quoted`, cells are as the CSV text has
        them (a cell starting with a quote is still in its quotes) and are unquoted when read."""
        classifier = self.classifier
        settings = classifier.settings
        decide, note_missing = classifier.decide, classifier.note_missing

        def columns(fields):
            # A field may come as a plain column, a __mv_ column, or both.
            return tuple((plain.get(field, empty), multi.get(field, empty), field)
                         for field in fields if field in plain or field in multi)

        image_cols, port_cols = columns(settings.image_fields), columns(settings.port_fields)
        dest_cols, original_cols = columns(settings.dest_fields), columns(settings.original_fields)
        role_cols = {"direction": columns(settings.direction_fields),
                     "host": columns(settings.host_fields), "user": columns(settings.user_fields)}
        image_fields, port_fields = settings.image_fields, settings.port_fields

        # The matched reader's cells are still in their CSV quotes; the csv module's are values.
        read = _unquoted if quoted else str

        def cell(row, cols):
            # A multivalue field classifies by its first value; the reply keeps them all.
            for at, mv_at, field in cols:
                value = read(row[mv_at])
                if value:
                    value = decode_mv(value)[0]
                    if value:
                        return value, field
                else:
                    value = read(row[at])
                    if value:
                        return value, field
            return "", ""

        def classify(row):
            image, image_field = cell(row, image_cols)
            if not image:
                note_missing(image_fields)
            original, original_field = cell(row, original_cols) if original_cols else ("", "")
            port_text = cell(row, port_cols)[0]
            if not port_text:
                note_missing(port_fields)
            dest = cell(row, dest_cols)[0] if dest_cols else ""
            return decide(image, image_field, original, original_field, port_text, dest,
                          lambda role: cell(row, role_cols[role])[0])

        return classify

    def _append_matched(self, pieces, header, start):
        """The usual case, fast: the records of `pieces` (the header's piece first, its records
        from `start`; each piece ends where a record ends) are matched by regular expressions of
        the header's width that capture only the cells the classifier reads, and each record's text goes back exactly
        as splunkd sent it, followed by the output columns. Returns None, and _append parses the
        chunk with the csv module instead, when a record is not the well-formed CSV splunkd
        writes (a quote inside an unquoted cell, a bare CR, a short or long row...)."""
        settings = self.classifier.settings
        plain_at, multi_at = {}, {}     # field -> header position of its plain / __mv_ column
        for position, name in enumerate(header):
            if name.startswith("__mv_"):
                multi_at.setdefault(name[5:], position)
            else:
                plain_at.setdefault(name, position)

        # The full pattern captures every cell of the profile's fields; group 1 is the record's
        # text, so row[0] is that text and the cells follow.
        roles = set(settings.image_fields + settings.original_fields + settings.port_fields
                    + settings.dest_fields + settings.direction_fields + settings.host_fields
                    + settings.user_fields)
        captured = sorted(at for where in (plain_at, multi_at) for field, at in where.items() if field in roles)
        row_of = {at: index + 1 for index, at in enumerate(captured)}
        empty = len(captured) + 1
        plain = {field: row_of[at] for field, at in plain_at.items() if at in row_of}
        multi = {field: row_of[at] for field, at in multi_at.items() if at in row_of}
        full = _record_pattern(len(header), tuple(captured)).match
        classify = self._row_classifier(plain, multi, empty, quoted=True)
        tail_of = self._tail
        annotate = settings.mode == "annotate"

        # The quick pattern, for the usual event: an unlisted process. It captures the first
        # present image, port and destination field, and matches only when their __mv_ cells and
        # every OriginalFileName cell are empty, so each is a single value. The reply cells of
        # an unlisted process come from caches keyed by the cells' CSV text.
        def first(fields):
            for field in fields:
                if field in plain_at or field in multi_at:
                    return plain_at.get(field), multi_at.get(field)
            return None, None

        (image_at, image_mv), (port_at, port_mv), (dest_at, dest_mv) = (
            first(settings.image_fields), first(settings.port_fields), first(settings.dest_fields))
        quick = None
        if image_at is not None and port_at is not None and (dest_at is not None or dest_mv is None):
            quick_captured = tuple(sorted(at for at in (image_at, port_at, dest_at) if at is not None))
            # Groups follow the header's order; image, port, destination follow the profile's.
            groups = tuple(quick_captured.index(at) + 2 for at in (image_at, port_at, dest_at) if at is not None)
            blank = [at for at in (image_mv, port_mv, dest_mv) if at is not None]
            blank += [where[field] for field in settings.original_fields
                      for where in (plain_at, multi_at) if field in where]
            quick = _record_pattern(len(header), quick_captured, tuple(blank)).match
            has_dest = dest_at is not None
            images, ports, dests = self._images, self._ports, self._dests

        parts = [_output_header(header)]
        append = parts.append
        count = 0
        for body, position in zip(pieces, itertools.chain((start,), itertools.repeat(0))):
            end = len(body)
            while position < end:
                if quick is not None:
                    found = quick(body, position)
                    if found is not None:
                        image, port, dest = found.group(*groups) if has_dest else found.group(*groups) + ("",)
                        if image and port and (dest or not has_dest):
                            known = images.get(image) or self._image_cells(image)
                            if known[0] is None:
                                position = found.end()
                                if annotate:
                                    append(found[1])
                                    append(known[1] + (ports.get(port) or self._port_cells(port))
                                           + (dests.get(dest) or self._dest_cells(dest)))
                                    count += 1
                                continue
                found = full(body, position)
                if found is None:
                    return None
                position = found.end()
                row = [*found.groups(), ""]
                values = classify(row)
                if values is not None:
                    append(row[0])
                    append(tail_of(values))
                    count += 1
        if count == 0:
            return "", 0
        return "".join(parts), count

    def _append(self, body):
        """_append_matched's result the slow, general way: every record parsed by the csv module
        (which reads anything, ragged rows included); each record's text still goes back as sent."""
        lines = iter(io.StringIO(body, newline=""))
        taken = []

        def take():
            for line in lines:
                taken.append(line)
                yield line

        reader = csv.reader(take(), SplunkCsv)
        header = next(reader)
        taken.clear()
        width = len(header)
        plain, multi = {}, {}
        for position, name in enumerate(header):
            if name.startswith("__mv_"):
                multi.setdefault(name[5:], position)
            else:
                plain.setdefault(name, position)

        classify = self._row_classifier(plain, multi, width)
        tail_of = self._tail
        parts = [_output_header(header)]
        append = parts.append
        count = 0

        for row in reader:
            text = "".join(taken)
            taken.clear()
            ragged = len(row) != width
            if ragged:
                row = (row + [""] * width)[:width]
            row.append("")
            values = classify(row)
            if values is None:
                continue
            if ragged:
                # A short or long row: padded or cut to the header, as the SDK's zip() reading does.
                text = _quoted_line(row[:width])
            # A record with no fields has no text: its reply row is the output cells alone.
            append(text.rstrip("\r\n") if width else "")
            append(tail_of(values) if width else tail_of(values)[1:])
            count += 1
        if count == 0:
            return "", 0
        return "".join(parts), count

    # The three caches below, by CSV cell text, are filled on a miss from the classifier's
    # uncached functions (one cache layer, not two). Ports, quick to read again and many, are
    # kept to CACHE_LIMIT; images and destinations to LARGE_CACHE_LIMIT.

    def _image_cells(self, cell):
        """(category, ",ImageBasename,,") of an image cell's CSV text."""
        base, category = self.classifier.image_entry(_unquoted(cell))
        return remember(self._images, cell, (category, "," + _quoted_cell(base) + ",,"), bounded.LARGE_CACHE_LIMIT)

    def _port_cells(self, cell):
        """"DestPort,," of a port cell's CSV text."""
        text = self.classifier.port_entry(_unquoted(cell))[1]
        return remember(self._ports, cell, (text if text.isdigit() else _quoted_cell(text)) + ",,")

    def _dest_cells(self, cell):
        """The reply's cells after DestPort for an unlisted process, by its destination's CSV text."""
        internal = self.classifier.internal(_unquoted(cell)) if cell else "0"
        known = self._unlabelled.get(internal)
        if known is None:
            known = self._unlabelled[internal] = _quoted_line(
                [cell_ for value in unlabelled("", "", internal)[2:] for cell_ in _pair(value)])
        return remember(self._dests, cell, known, bounded.LARGE_CACHE_LIMIT)

    def _tail(self, values):
        """The reply cells for output values, as ",cell,cell...\r\n" (each field and its __mv_
        cell). Built from cached pieces: the image name and port vary a lot, the rest little."""
        rest = values[2:]
        if rest[8].__class__ is list:
            rest = rest[:8] + (tuple(rest[8]),) + rest[9:]
        text = self._rests.get(rest)
        if text is None:
            text = remember(self._rests, rest, _quoted_line([cell for value in values[2:] for cell in _pair(value)]))
        cells = self._cells
        base, port = cells.get(values[0]), cells.get(values[1])
        if base is None:
            base = remember(cells, values[0], _quoted_cell(values[0]))
        if port is None:
            port = remember(cells, values[1], _quoted_cell(values[1]))
        return "," + base + ",," + port + ",," + text

    def _rewrite(self, body):
        """An input that already has output fields (e.g. a second | classifyport): rebuild
        every row, the output fields taking over the input's columns.

        The reply has the SDK's layout: each field followed by its __mv_ column,
        input fields first in their order, then the output fields (a field the
        input already has keeps its place and takes the new value). A __mv_ cell
        holding one value becomes a plain value, as the SDK writes it.
        """
        if not body:
            return "", 0
        reader = csv.reader(io.StringIO(body), SplunkCsv)
        header = next(reader, None)
        if not header:
            return "", 0
        width = len(header)

        # Where each field's plain and __mv_ cells are; a field with only a __mv_
        # column gets a spare slot after the row. Slot `width` is always "".
        plain, multi, bases = {}, {}, []
        for position, name in enumerate(header):
            base = name[5:] if name.startswith("__mv_") else name
            if base not in plain and base not in multi:
                bases.append(base)
            (multi if name.startswith("__mv_") else plain).setdefault(base, position)
        empty, spare = width, width + 1
        for base in bases:
            if base not in plain:
                plain[base] = spare
                spare += 1
        slots = spare - width
        multi_pairs = tuple((plain[base], multi[base]) for base in bases if base in multi)
        multi_cells = tuple(position for _, position in multi_pairs)

        classify = self._row_classifier(plain, multi, empty)

        # Reply columns: input fields (an output field already present is taken over), then new output fields.
        taken = {name: index for index, name in enumerate(OUTPUT_FIELDS) if name in plain}
        order, out_header = [], []
        for base in bases:
            out_header.extend((base, "__mv_" + base))
            order.extend((empty, empty) if base in taken else (plain[base], multi.get(base, empty)))
        overwrite = tuple((2 * bases.index(name), index) for name, index in taken.items())
        new_fields = tuple(index for index, name in enumerate(OUTPUT_FIELDS) if name not in taken)
        for index in new_fields:
            out_header.extend((OUTPUT_FIELDS[index], "__mv_" + OUTPUT_FIELDS[index]))
        pick = operator.itemgetter(*order)
        padding = [""] * slots

        out = io.StringIO()
        writer = csv.writer(out, SplunkCsv)
        writer.writerow(out_header)
        writerow = writer.writerow
        count = 0

        for row in reader:
            if len(row) != width:
                # A short or long row: pad or cut it to the header, as the SDK's zip() reading does.
                row = (row + [""] * width)[:width]
            row.extend(padding)
            if multi_cells and any(row[position] for position in multi_cells):
                for at, mv_at in multi_pairs:
                    if row[mv_at]:
                        values = decode_mv(row[mv_at])
                        if len(values) == 1:
                            row[at], row[mv_at] = values[0], ""
                        else:
                            row[at], row[mv_at] = "\n".join(values), encode_mv(values)
            values = classify(row)
            if values is None:
                continue
            reply = list(pick(row)) if len(order) > 1 else [pick(row)]
            for at, index in overwrite:
                reply[at:at + 2] = _pair(values[index])
            for index in new_fields:
                reply.extend(_pair(values[index]))
            writerow(reply)
            count += 1
        if count == 0:
            return "", 0
        return out.getvalue(), count


# A cell as splunkd writes it: unquoted (no quote, comma, CR or LF), or quoted with quotes doubled.
# Possessive where the re module has them (3.11+): the same matches, as nothing that can follow a cell
# (a comma, a line end, the end) matches what backtracking into it would give back; only faster.
_CELL = r'(?:"[^"]*+(?:""[^"]*+)*+"|[^",\r\n]*+)' if sys.version_info >= (3, 11) else \
    r'(?:"[^"]*(?:""[^"]*)*"|[^",\r\n]*)'
_NOT_QUOTED_EMPTY = r'(?!""(?:,|\r\n|\n|\Z))'
_PATTERNS = {}


def _record_pattern(width, captured, blank=None):
    """A regular expression matching one record of `width` cells and its line end: group 1 is
    the record's text and the cells at the `captured` positions are groups 2 on. With `blank`
    (the quick pattern), the cells at the `blank` positions must be empty and the captured ones
    must not be `""`, an empty value in quotes (so that a captured cell is empty exactly when its
    value is)."""
    key = (width, captured, blank)
    pattern = _PATTERNS.get(key)
    if pattern is None:
        if len(_PATTERNS) >= 64:
            _PATTERNS.clear()
        wanted = "(%s)" % (_CELL if blank is None else _NOT_QUOTED_EMPTY + _CELL)
        blank = blank or ()
        cells = ",".join(wanted if position in captured else "" if position in blank else _CELL
                         for position in range(width))
        pattern = _PATTERNS[key] = re.compile(r"(%s)(?:\r\n|\n|\Z)" % cells)
    return pattern


def record_end(data, odd):
    """The index after the last line end in the bytes `data` with an even number of quotes
    before it, counting from the start of the record `data` continues (`odd`: whether the part
    of it before `data` has an odd number); or 0. In CSV as splunkd writes it (quotes only
    around cells, doubled inside) that is where the last complete record ends."""
    end = data.rfind(b"\n")
    if end < 0:
        return 0
    odd ^= data.count(b'"', 0, end) & 1
    while odd:
        before = data.rfind(b"\n", 0, end)
        if before < 0:
            return 0
        odd ^= data.count(b'"', before, end) & 1
        end = before
    return end + 1


def _header(body):
    """(header cells or None, where the records start or None) of a chunk body. The start is
    known when the header is one line (no bare CR in it, which the csv module reads as a line
    end, and no quoted newline); _append_matched needs it."""
    # Read the header from its own line, not through a copy of the whole body.
    end = body.find("\n")
    first = body if end < 0 else body[:end + 1]
    start = len(first) if end >= 0 and "\r" not in first[:-2 if first.endswith("\r\n") else -1] else None
    if first.count('"') % 2:
        first, start = body, None  # a quoted newline inside the header: parse it in full
    return next(csv.reader(io.StringIO(first, newline=""), SplunkCsv), None), start


def _plain_input(header):
    """Whether the input has none of the output fields (else every row is rewritten)."""
    names = {name[5:] if name.startswith("__mv_") else name for name in header}
    return names.isdisjoint(OUTPUT_FIELDS)


def _output_header(header):
    return _quoted_line(header + [cell for name in OUTPUT_FIELDS for cell in (name, "__mv_" + name)])


def _unquoted(cell):
    """A cell's value from its CSV text."""
    return cell[1:-1].replace('""', '"') if cell[:1] == '"' else cell


def _quoted_cell(value):
    """One cell as the csv writer quotes it inside a row."""
    return _quoted_line([value])[:-2] if value else ""


def _quoted_line(cells):
    out = io.StringIO()
    csv.writer(out, SplunkCsv).writerow(cells)
    return out.getvalue()


def _pair(value):
    """The plain and __mv_ cells of an output value (a list is multivalue)."""
    if value.__class__ is list:
        if len(value) > 1:
            return "\n".join(value), encode_mv(value)
        value = value[0] if value else ""
    return value, ""
