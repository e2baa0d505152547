"""Classify one SCP v2 chunk body, CSV in and CSV out, without building a dict per record.

splunkd sends each execute chunk as CSV: a header of field names, where a
multivalue field `x` also has a `__mv_x` column (`$a$;$b$`, `$` doubled). The
SDK turns every row into an OrderedDict and back; this module keeps rows as
lists, copies the input cells through untouched, and appends (or, for a field
the input already has, overwrites in place) the output columns. Decoded, the
records are the ones the SDK's record path produces.
"""
import csv
import io
import operator
import re

from .classifier import OUTPUT_FIELDS


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

    def process(self, body):
        """Return (reply CSV text, number of records written) for one chunk body."""
        if not body:
            return "", 0
        # Read the header from its own line, not through a copy of the whole body.
        end = body.find("\n")
        first = body if end < 0 else body[:end + 1]
        if first.count('"') % 2:
            first = body  # a quoted newline inside the header: parse it in full
        header = next(csv.reader(io.StringIO(first, newline=""), SplunkCsv), None)
        if not header:
            return "", 0
        names = {name[5:] if name.startswith("__mv_") else name for name in header}
        if names.isdisjoint(OUTPUT_FIELDS):
            return self._append(body)
        return self._rewrite(body)

    def _row_classifier(self, plain, multi, empty):
        """A function from a row (list of cells, cell `empty` always "") to the classifier's
        output values, or None to drop the row. `plain` and `multi` map field names to the
        positions of their plain and __mv_ cells."""
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

        def cell(row, cols):
            # A multivalue field classifies by its first value; the reply keeps them all.
            for at, mv_at, field in cols:
                if row[mv_at]:
                    value = decode_mv(row[mv_at])[0]
                    if value:
                        return value, field
                elif row[at]:
                    return row[at], field
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

    def _append(self, body):
        """The usual case: each input record's text goes back exactly as splunkd sent it,
        followed by the output columns; only the cells the classifier reads are parsed out."""
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

        out_header = _quoted_line(header + [cell for name in OUTPUT_FIELDS for cell in (name, "__mv_" + name)])
        parts = [out_header]
        append = parts.append
        tails = {}
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
            key = values if values[10].__class__ is not list else values[:10] + (tuple(values[10]),) + values[11:]
            tail = tails.get(key)
            if tail is None:
                if len(tails) >= 4096:
                    tails.clear()
                tail = _quoted_line([cell_ for value in values for cell_ in _pair(value)])
                tails[key] = tail
            append(text.rstrip("\r\n"))
            append(",")
            append(tail)
            count += 1
        if count == 0:
            return "", 0
        return "".join(parts), count

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
