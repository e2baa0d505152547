"""Read a lookup CSV the way an admin may have saved it (Lookup Editor, Excel, a text editor)."""
import csv


class LookupProblem(Exception):
    """A lookup file that cannot be used; the message names the file, the row and the problem."""

    def __init__(self, filename, row, problem):
        self.filename, self.row, self.problem = filename, row, problem
        where = filename if row is None else "%s row %d" % (filename, row)
        super().__init__("%s: %s" % (where, problem))


def read_rows(path, filename, required):
    """Yield (row_number, {column: value}) for each non-blank data row.

    Tolerates a UTF-8 byte order mark, CRLF line ends, upper-case or padded
    column names, padded values and extra columns. Row numbers count the header
    as row 1, as a spreadsheet shows them.
    """
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except OSError as error:
        raise LookupProblem(filename, None, "cannot be read (%s)" % (error.strerror or error))
    with handle:
        try:
            reader = csv.reader(handle)
            header = None
            for number, cells in enumerate(reader, start=1):
                if header is None:
                    header = [cell.strip().lower() for cell in cells]
                    missing = [name for name in required if name not in header]
                    if missing:
                        raise LookupProblem(filename, 1, "missing column %s (header is: %s)"
                                            % (", ".join(missing), ",".join(header)))
                    continue
                if not any(cell.strip() for cell in cells):
                    continue
                values = {}
                for index, name in enumerate(header):
                    values[name] = cells[index].strip() if index < len(cells) else ""
                yield number, values
        except UnicodeDecodeError as error:
            raise LookupProblem(filename, None, "is not UTF-8 text (%s)" % error.reason)
        except csv.Error as error:
            raise LookupProblem(filename, reader.line_num, "is not valid CSV (%s)" % error)
    if header is None:
        raise LookupProblem(filename, None, "is empty: it needs the header %s" % ",".join(required))
