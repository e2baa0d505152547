r"""An independent evaluator of the ORIGINAL SPL detection, read from the seed text.

It is the yardstick the seed-parity tests hold `| classifyport` against, so it
shares nothing with the command: it imports nothing from bin/ or portclassify,
and it reads every list (ports, the three process regexes, the IsInternal
regex, the label order, the table columns) out of the search text itself with
regular expressions. Each pipeline stage must have exactly the shape the
original has; anything else raises ValueError instead of being guessed at.

Splunk semantics reproduced (null is None here):

* SPL string literals: inside "...", `\\` is one backslash and `\"` a quote;
  any other backslash is kept as written (so `"\.exe"` is the regex `\.exe`
  and `".*\\\\"` is the regex `.*\\`).
* `tonumber(X)`: base 10; leading zeros are decimal ("0443" is 443, never
  octal); a field value that does not parse as a number is null: words, an
  empty value, a missing field and, as Splunk's Conversion functions reference
  says (use trim() first), a value with leading or trailing spaces. A decimal
  fraction parses ("443.0" is 443). Signs, exponents and hex are modelled
  but not relied on: real Sysmon ports are plain digits.
* `where F IN (...)`: numeric equality; a null F is never IN, so `where` drops it.
* `replace(X, re, s)`: every non-overlapping match replaced (PCRE global
  replace); `.*\\` is greedy, so it removes everything up to the LAST
  backslash; forward slashes are not separators. Null in, null out.
* `lower(X)`: lower case; null stays null.
* `match(X, re)`: unanchored regex search (true when the regex matches anywhere);
  null when X is null, which case()/if() treat as not true.
* `case(c1, v1, c2, v2, ...)`: the value of the first true condition.
* `if(c, a, b)`: a when c is true, else b (also when c is null).
* `where A=1 OR B=1 ...`: keeps the event when any comparison holds.
* `table`: only the named columns, in order (a missing field is an empty cell).
* `sort - F`: descending by F (numeric when the values are numbers), stable for
  ties, and, as Splunk's sort without a count, at most 10000 results.

The base search (`index=... sourcetype=... EventCode=3`) selects the events; the
evaluator starts at the first `|`: the caller passes Sysmon EID 3 events.
"""
import re

SORT_DEFAULT_LIMIT = 10000  # Splunk `sort` without a count returns at most 10000 results

_STRING = r'"((?:[^"\\]|\\.)*)"'
_FIELD = r"([A-Za-z_][A-Za-z0-9_]*)"
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


# ---------------------------------------------------------------- SPL semantics

def spl_string(literal_body):
    """The value of an SPL string literal's body: `\\\\` -> `\\`, `\\"` -> `"`, other backslashes kept."""
    out, i = [], 0
    while i < len(literal_body):
        char = literal_body[i]
        if char == "\\" and i + 1 < len(literal_body) and literal_body[i + 1] in '\\"':
            out.append(literal_body[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def tonumber(value):
    """Splunk tonumber(X) in base 10; None (null) when X is null or not a number."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    if not _NUMBER_TEXT.match(value):
        return None
    number = float(value)
    if number.is_integer() and re.fullmatch(r"[+-]?[0-9]+", value):
        return int(value, 10)
    return number


def replace(value, regex, replacement):
    if value is None:
        return None
    return re.sub(regex, replacement, value)


def lower(value):
    return None if value is None else value.lower()


def match(value, regex):
    """None (null) for a null value, else whether the regex matches anywhere."""
    if value is None:
        return None
    return re.search(regex, value) is not None


def spl_in(value, options):
    if value is None:
        return False
    return any(value == option for option in options)


def _field(event, name):
    """A field's value as Splunk sees it: None when absent."""
    value = event.get(name)
    if isinstance(value, list):  # multivalue: these functions use the first value
        value = value[0] if value else None
    return value


# ---------------------------------------------------------------- reading the seed

def extract_search(text):
    """The SPL search in the seed page: from the `index=` line through the `| sort` line."""
    found = re.search(r"^(index=.*?^\|\s*sort\b[^\n]*)$", text, re.M | re.S)
    if not found:
        raise ValueError("no SPL search (index= ... | sort ...) found in the seed text")
    return found.group(1).strip()


def split_pipeline(search):
    """[base search, command, ...]: commands start at a `|` that begins a line."""
    parts = re.split(r"\n\s*\|", search)
    return [parts[0].strip()] + [_squeeze(part) for part in parts[1:]]


def _squeeze(command):
    """Collapse runs of blanks and newlines to one space, outside string literals only."""
    pieces = re.split(r'("(?:[^"\\]|\\.)*")', command)
    return "".join(piece if index % 2 else re.sub(r"\s+", " ", piece)
                   for index, piece in enumerate(pieces)).strip()


class OriginalSearch:
    """The original detection, parsed from its text, evaluated with Splunk semantics."""

    def __init__(self, text):
        self.search = extract_search(text)
        stages = split_pipeline(self.search)
        self.base_search = stages[0]
        commands = stages[1:]
        expected = 11
        if len(commands) != expected:
            raise ValueError("expected %d pipeline commands after the base search, found %d: %r"
                             % (expected, len(commands), commands))
        (c_port, c_where_port, c_base, c_si, c_lol, c_us, c_where_cat, c_internal, c_label,
         c_table, c_sort) = commands

        m = _full(r"eval %s=tonumber\(%s\)" % (_FIELD, _FIELD), c_port)
        self.port_out, self.port_in = m.group(1), m.group(2)

        m = _full(r"where %s IN \(([^)]*)\)" % _FIELD, c_where_port)
        if m.group(1) != self.port_out:
            raise ValueError("the port filter tests %s, not %s" % (m.group(1), self.port_out))
        self.ports = tuple(int(piece.strip()) for piece in m.group(2).split(","))

        m = _full(r"eval %s=replace\(%s, %s, %s\)" % (_FIELD, _FIELD, _STRING, _STRING), c_base)
        self.basename_out, self.image_in = m.group(1), m.group(2)
        self.basename_regex, self.basename_replacement = spl_string(m.group(3)), spl_string(m.group(4))

        self.categories = []  # [(flag field, regex text)] in the order the search computes them
        for command in (c_si, c_lol, c_us):
            m = _full(r"eval %s=case\( match\(lower\(%s\), %s\), 1, true\(\), 0 \)"
                      % (_FIELD, _FIELD, _STRING), command)
            if m.group(2) != self.basename_out:
                raise ValueError("%s matches %s, not %s" % (m.group(1), m.group(2), self.basename_out))
            self.categories.append((m.group(1), spl_string(m.group(3))))
        self.flag_fields = tuple(flag for flag, _ in self.categories)

        m = _full(r"where (.*)", c_where_cat)
        terms = [term.strip() for term in m.group(1).split(" OR ")]
        self.category_filter = tuple(_full(r"%s=1" % _FIELD, term).group(1) for term in terms)
        if set(self.category_filter) != set(self.flag_fields):
            raise ValueError("the category filter tests %s, not %s" % (self.category_filter, self.flag_fields))

        m = _full(r"eval %s=if\(match\(%s, %s\), 1, 0\)" % (_FIELD, _FIELD, _STRING), c_internal)
        self.internal_out, self.dest_in, self.internal_regex = m.group(1), m.group(2), spl_string(m.group(3))

        m = _full(r"eval %s=case\( (.*) \)" % _FIELD, c_label)
        self.label_out = m.group(1)
        pairs = re.findall(r'(?:%s=1|(true)\(\)), %s' % (_FIELD, _STRING), m.group(2))
        rebuilt = ", ".join(('true()' if is_true else "%s=1" % flag) + ', "%s"' % label
                            for flag, is_true, label in pairs)
        if rebuilt != m.group(2):
            raise ValueError("cannot read the label case(): %r" % m.group(2))
        self.label_order = tuple((flag, spl_string(label)) for flag, is_true, label in pairs if not is_true)
        defaults = [spl_string(label) for flag, is_true, label in pairs if is_true]
        self.default_label = defaults[0] if defaults else None

        m = _full(r"table (.*)", c_table)
        self.table_columns = tuple(column.strip() for column in m.group(1).split(","))

        m = _full(r"sort (-|\+)?\s*%s" % _FIELD, c_sort)
        self.sort_descending, self.sort_field = m.group(1) == "-", m.group(2)

    # -- the lists, for tests and difference explanations

    def category_names(self, flag):
        """The alternatives of a category regex `(a|b|c)\\.exe` as file names (a.exe, ...)."""
        regex = dict(self.categories)[flag]
        m = re.fullmatch(r"\(([a-z0-9|]+)\)\\\.exe", regex)
        if not m:
            raise ValueError("regex %r is not of the form (a|b)\\.exe" % regex)
        return tuple(name + ".exe" for name in m.group(1).split("|"))

    def label_of_flag(self, flag):
        return dict(self.label_order)[flag]

    # -- evaluation

    def evaluate(self, event):
        """Every field the search's evals compute for this event, and whether its wheres keep it.

        Evals are per-event and pure, so they are computed for every event (what
        the search would compute if the event reached them); `kept` says whether
        the two `where` commands let the event through to the table.
        """
        out = {}
        out[self.port_out] = tonumber(_field(event, self.port_in))
        port_ok = spl_in(out[self.port_out], self.ports)
        basename = replace(_field(event, self.image_in), self.basename_regex, self.basename_replacement)
        out[self.basename_out] = basename
        for flag, regex in self.categories:
            out[flag] = 1 if match(lower(basename), regex) else 0
        category_ok = any(out[flag] == 1 for flag in self.category_filter)
        out[self.internal_out] = 1 if match(_field(event, self.dest_in), self.internal_regex) else 0
        label = self.default_label
        for flag, name in self.label_order:
            if out[flag] == 1:
                label = name
                break
        out[self.label_out] = label
        out["kept"] = port_ok and category_ok
        out["dropped_by"] = None if out["kept"] else ("port" if not port_ok else "category")
        return out

    def run(self, events):
        """The search's result table: kept events, the table's columns, sorted."""
        rows = []
        for event in events:
            result = self.evaluate(event)
            if not result["kept"]:
                continue
            merged = dict(event)
            merged.update({name: value for name, value in result.items() if name not in ("kept", "dropped_by")})
            rows.append({column: _field(merged, column) for column in self.table_columns})
        return sort_rows(rows, self.sort_field, self.sort_descending)[:SORT_DEFAULT_LIMIT]


def sort_rows(rows, field, descending):
    """Splunk sort on one field: numbers (numerically) before text (lexicographically),
    null values last whichever the direction; ties keep their input order."""
    numbers, texts, nulls = [], [], []
    for row in rows:
        value = row.get(field)
        number = tonumber(value) if isinstance(value, str) else value
        if number is not None:
            numbers.append((number, row))
        elif value is not None:
            texts.append((value, row))
        else:
            nulls.append(row)
    numbers.sort(key=lambda item: item[0], reverse=descending)  # sort() is stable, also reversed
    texts.sort(key=lambda item: item[0], reverse=descending)
    return [row for _, row in numbers] + [row for _, row in texts] + nulls


def _full(pattern, text):
    m = re.fullmatch(pattern, text)
    if not m:
        raise ValueError("pipeline command %r does not have the expected shape %r" % (text, pattern))
    return m


def load(path):
    with open(path, encoding="utf-8") as handle:
        return OriginalSearch(handle.read())
