#!/usr/bin/env python3
r"""Replay, in Python, of the `classifyport_enrich_process` macro (default/macros.conf).

The macro copies CommandLine, ParentImage, OriginalFileName and (when missing)
User from each process's Sysmon Event ID 1 onto its Event ID 3 events, matched
by host and ProcessGuid, with `eval`/`eventstats`/`where`/`eval`/`fields`. No
Splunk server runs here, so this module replays those steps on plain dicts. It
is DRIVEN BY THE MACRO TEXT: the all-zero-GUID regex, the trim characters, the
copied fields, the `by` fields, the event codes and the final `coalesce`
assignments are all read out of the macro's definition with regular
expressions, so the replay and the macro cannot drift. A definition of any
other shape raises MacroShapeError naming the stage that no longer fits; it is
never guessed at. Standard library only, Python 3.9+.

    import enrich
    eid3_enriched = enrich.enrich(events)          # reads default/macros.conf
    print("\n".join(enrich.describe()))            # the steps, as read from the macro

The expected shape (whitespace free; names and lists are whatever the macro says):

    eval G=if(isnull(P) OR match(P, "ZERO_RE"), null(), lower(trim(P, "CHARS")))
    | eventstats values(eval(if(EventCode=N, F, null()))) as H ... by B1 B2 ...
    | where EventCode=M
    | eval F=coalesce(F, mvindex(H, 0)), ...
    | fields - H* ...

Splunk semantics reproduced (null is None, or a key that is absent):

* Events are dicts of Sysmon field names to strings (a list is a multivalue
  field). A field that is absent, or whose value is None, is null. A field
  present with an empty string is NOT null: it is a value, for `isnull`,
  `values()` and `coalesce` alike. Our JSON sources drop empty fields, so in
  practice "empty" means "absent" there; an explicitly empty value is kept.
* Field aliases: `host` falls back to `Computer` when an event has no `host`
  (the JSON corpora carry only the Windows `Computer`; in Splunk `host` is
  normally the forwarder's name, which for a directly forwarded Windows host
  is the same machine), and `EventCode` falls back to `EventID`. The aliases
  are used for reading only: no `host` or `EventCode` key is added to events.
* `match(X, re)`: unanchored PCRE search, case-sensitive; SPL string literals
  unescape `\\` and `\"` only. The regex is translated to Python's `re`
  (`(?<name>` -> `(?P<name>`, `\z` -> `\Z`, PCRE's `\Z` -> `(?=\n?\Z)`);
  PCRE-only constructs Python cannot express raise MacroShapeError.
* `trim(X, "chars")` strips those characters from both ends; `lower(X)` lower-cases.
* `EventCode=N` compares numerically when the value is a number ("3", "03"),
  else as text; a null EventCode is never equal.
* `eventstats values(...) as H by B...`: an event whose by-field is null joins
  no group and gets no H; a grouped event gets H = the DISTINCT values of the
  group's contributing events, sorted lexicographically (code point order, as
  Splunk sorts values(): "B" < "a", "10" < "9"); a group with no values gives no H.
* `mvindex(H, 0)`: the first of those values; null when H is null.
* `coalesce(F, ...)`: keeps an existing non-null F (including ""), else the
  first non-null argument; an eval that yields null leaves F absent.
* `where EventCode=M`: only those events, in input order.
* `fields - H*`: removes every field matching the wildcard(s); nothing else.

The output events are new dicts; the input events are never modified.
Look-back: only Event ID 1 events passed in can enrich. A process created
before the events given (before the search window in Splunk) leaves its
Event ID 3 events unenriched: they are returned, just without those fields.

Run `python3 tools/enrich.py` to print the steps read from the macro, or
`python3 tools/enrich.py FILE.jsonl ...` to enrich JSON-lines events (EID 1
and EID 3 together) and write the Event ID 3 events as JSON lines.
"""
import argparse
import fnmatch
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MACROS_CONF = os.path.join(ROOT, "default", "macros.conf")
STANZA = "classifyport_enrich_process"

# Fields read through a fallback when the event lacks them (documented above).
ALIASES = {"host": "Computer", "EventCode": "EventID"}

__all__ = ["MacroShapeError", "Steps", "read_conf", "macro_definition", "parse_definition",
           "load_steps", "describe", "enrich", "ALIASES", "MACROS_CONF", "STANZA"]


class MacroShapeError(ValueError):
    """The macro is missing or no longer has the shape this replay understands."""


# ---------------------------------------------------------------- macros.conf

def read_conf(path):
    """{stanza: {key: value}} from a Splunk .conf file.

    Whole-line `#` comments, `[stanza]` headers, `key = value` lines, and a
    trailing backslash continuing a value on the next line (the backslash is
    dropped, the line break kept). Keys before any stanza go to "default"; a
    repeated stanza merges and a repeated key keeps the last value, as Splunk
    layers them.
    """
    with open(path, encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    conf, stanza, i = {}, "default", 0
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            stanza = stripped[1:-1]
            conf.setdefault(stanza, {})
            continue
        if "=" not in line:
            raise MacroShapeError("%s:%d: not a stanza, comment or key = value line: %r" % (path, i, line))
        key, value = line.split("=", 1)
        parts = [value]
        while parts[-1].endswith("\\") and i < len(lines):
            parts[-1] = parts[-1][:-1]
            parts.append(lines[i])
            i += 1
        conf.setdefault(stanza, {})[key.strip()] = "\n".join(parts).strip()
    return conf


def macro_definition(path=MACROS_CONF, stanza=STANZA):
    """The `definition` of the enrichment macro in `path`."""
    conf = read_conf(path)
    if stanza not in conf:
        raise MacroShapeError("%s has no [%s] stanza" % (path, stanza))
    if "definition" not in conf[stanza]:
        raise MacroShapeError("[%s] in %s has no definition" % (stanza, path))
    return conf[stanza]["definition"]


# ---------------------------------------------------------------- SPL pieces

_STRING = r'"((?:[^"\\]|\\.)*)"'
_FIELD = r"([A-Za-z_][A-Za-z0-9_]*)"
_WS = r"\s*"


def _spl_string(body):
    """Value of an SPL string literal's body: `\\\\` -> `\\`, `\\"` -> `"`, other backslashes kept."""
    return re.sub(r'\\([\\"])', r"\1", body)


_PCRE_ONLY_ESCAPES = "QEKRhHXgkG"  # \\Q..\\E, \\K, \\R, \\h, \\X, \\g, \\k, \\G: no Python equivalent


def pcre_to_python(pattern):
    """Translate a PCRE pattern as Splunk's match() uses it into Python `re` syntax.

    Handles the differences that matter for the simple patterns a macro uses:
    `(?<name>` becomes `(?P<name>`, `\\z` becomes `\\Z` and PCRE's `\\Z` (end, or
    before a final newline) becomes `(?=\\n?\\Z)`. Raises MacroShapeError on PCRE
    features Python 3.9 cannot express: possessive quantifiers, atomic groups,
    recursion, branch reset, POSIX classes and the escapes above.
    """
    def refuse(what):
        raise MacroShapeError("PCRE %s in the regex %r has no Python equivalent" % (what, pattern))

    out, i, n = [], 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 >= n:
                refuse("trailing backslash")
            pair = pattern[i:i + 2]
            if pair[1] in _PCRE_ONLY_ESCAPES:
                refuse("escape %s" % pair)
            out.append({"\\z": "\\Z", "\\Z": "(?=\\n?\\Z)"}.get(pair, pair))
            i += 2
        elif char == "[":  # a character class, copied as is up to its closing bracket
            j = i + 1
            if pattern[j:j + 1] == "^":
                j += 1
            if pattern[j:j + 1] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                if pattern[j] == "\\":
                    if pattern[j + 1:j + 2] and pattern[j + 1] in _PCRE_ONLY_ESCAPES:
                        refuse("escape \\%s" % pattern[j + 1])
                    j += 2
                    continue
                if re.match(r"\[:\^?[a-z]+:\]", pattern[j:]):
                    refuse("POSIX class")
                j += 1
            out.append(pattern[i:j + 1])
            i = j + 1
        elif pattern.startswith("(?", i):
            if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
                out.append("(?P<")
                i += 3
                continue
            following = pattern[i + 2:i + 3]
            if following in (">", "|", "R", "+", "-", "&") or following.isdigit() or pattern.startswith("(?P>", i):
                refuse("group (?%s" % following)
            out.append("(?")
            i += 2
        else:
            quantifier = re.match(r"[*+?]|\{[0-9]+(?:,[0-9]*)?\}", pattern[i:])
            if quantifier:
                i += len(quantifier.group())
                out.append(quantifier.group())
                if pattern[i:i + 1] == "+":
                    refuse("possessive quantifier %s+" % quantifier.group())
                if pattern[i:i + 1] == "?":  # lazy: same in Python
                    out.append("?")
                    i += 1
            else:
                out.append(char)
                i += 1
    python = "".join(out)
    try:
        re.compile(python)
    except re.error as error:
        raise MacroShapeError("the regex %r does not compile in Python (%s)" % (pattern, error))
    return python


def _split_pipeline(text):
    """The macro's commands, split on `|` outside double-quoted strings, whitespace squeezed."""
    stages, current, quoted, i = [], [], False, 0
    while i < len(text):
        char = text[i]
        if quoted and char == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        if char == "|" and not quoted:
            stages.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if quoted:
        raise MacroShapeError("unterminated string in the macro definition")
    stages.append("".join(current))
    return [re.sub(r"\s+", " ", stage).strip() for stage in stages]


def _split_top_level(text, sep=","):
    """Split on `sep` outside parentheses and strings."""
    parts, depth, quoted, current, i = [], 0, False, [], 0
    while i < len(text):
        char = text[i]
        if quoted and char == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == sep and depth == 0 and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current).strip())
    return parts


# ---------------------------------------------------------------- the macro's shape

_GUID_STAGE = re.compile(
    r"eval " + _FIELD + _WS + "=" + _WS + r"if\(" + _WS
    + r"isnull\(" + _WS + _FIELD + _WS + r"\) OR match\(" + _WS + _FIELD + _WS + "," + _WS + _STRING + _WS + r"\)"
    + _WS + "," + _WS + r"null\(\)" + _WS + "," + _WS
    + r"lower\(" + _WS + r"trim\(" + _WS + _FIELD + _WS + "," + _WS + _STRING + _WS + r"\)" + _WS + r"\)"
    + _WS + r"\)", re.IGNORECASE)
_AGGREGATE = re.compile(
    r"values\(" + _WS + r"eval\(" + _WS + r"if\(" + _WS + _FIELD + _WS + "=" + _WS + r"([0-9]+)" + _WS + ","
    + _WS + _FIELD + _WS + "," + _WS + r"null\(\)" + _WS + r"\)" + _WS + r"\)" + _WS + r"\)"
    + r" as " + _FIELD, re.IGNORECASE)
_EVENTSTATS_STAGE = re.compile(
    r"eventstats (?P<aggregates>(?:" + _AGGREGATE.pattern + r" ?)+)by (?P<by>[A-Za-z0-9_, ]+)", re.IGNORECASE)
_WHERE_STAGE = re.compile(r"where " + _FIELD + _WS + "=" + _WS + r"([0-9]+)", re.IGNORECASE)
_COALESCE = re.compile(_FIELD + _WS + "=" + _WS + r"coalesce\(" + _WS + _FIELD + _WS + "," + _WS
                       + r"mvindex\(" + _WS + _FIELD + _WS + "," + _WS + "0" + _WS + r"\)" + _WS + r"\)",
                       re.IGNORECASE)
_FIELDS_STAGE = re.compile(r"fields - ([A-Za-z0-9_*, ]+)", re.IGNORECASE)

_EXPECTED = [
    ("1 (GUID)",
     'eval G=if(isnull(ProcessGuid) OR match(ProcessGuid, "RE"), null(), lower(trim(ProcessGuid, "CHARS")))'),
    ("2 (eventstats)", "eventstats values(eval(if(EventCode=1, F, null()))) as H ... by FIELD ..."),
    ("3 (where)", "where EventCode=3"),
    ("4 (coalesce)", "eval F=coalesce(F, mvindex(H, 0)), ..."),
    ("5 (fields)", "fields - H*"),
]


def _shape_error(index, stage, detail=""):
    name, expected = _EXPECTED[index]
    return MacroShapeError("[%s] stage %s no longer has the expected shape%s.\n  expected: %s\n  found:    %s"
                           % (STANZA, name, (": " + detail) if detail else "", expected, stage))


class Steps(object):
    """The enrichment steps as read from the macro (see describe())."""

    def __init__(self, definition):
        self.definition = definition
        stages = _split_pipeline(definition)
        if len(stages) != len(_EXPECTED):
            raise MacroShapeError("[%s] has %d pipeline stages, expected %d:\n  %s\n  found: %s"
                                  % (STANZA, len(stages), len(_EXPECTED),
                                     "\n  ".join("%s: %s" % item for item in _EXPECTED), " | ".join(stages)))
        self._parse_guid(stages[0])
        self._parse_eventstats(stages[1])
        self._parse_where(stages[2])
        self._parse_coalesce(stages[3])
        self._parse_fields(stages[4])

    def _parse_guid(self, stage):
        found = _GUID_STAGE.fullmatch(stage)
        if not found:
            raise _shape_error(0, stage)
        self.guid_field, source_a, source_b, zero_literal, source_c, trim_literal = found.groups()
        if not source_a == source_b == source_c:
            raise _shape_error(0, stage, "isnull(), match() and trim() name different fields")
        self.source_field = source_a
        self.zero_regex_spl = _spl_string(zero_literal)
        try:
            self.zero_regex = re.compile(pcre_to_python(self.zero_regex_spl))
        except MacroShapeError as error:
            raise _shape_error(0, stage, str(error))
        self.trim_chars = _spl_string(trim_literal)

    def _parse_eventstats(self, stage):
        found = _EVENTSTATS_STAGE.fullmatch(stage)
        if not found:
            raise _shape_error(1, stage)
        aggregates = _AGGREGATE.findall(found.group("aggregates"))
        code_fields = set(item[0] for item in aggregates)
        codes = set(item[1] for item in aggregates)
        if len(code_fields) != 1 or len(codes) != 1:
            raise _shape_error(1, stage, "every values() must test the same event code")
        self.code_field = code_fields.pop()
        self.source_code = int(codes.pop())
        self.collected = [(item[2], item[3]) for item in aggregates]  # (field, helper), macro order
        self.by = [name for name in re.split(r"[ ,]+", found.group("by").strip()) if name]
        helpers = [helper for _, helper in self.collected]
        if len(set(helpers)) != len(helpers):
            raise _shape_error(1, stage, "two values() write the same field")
        if self.guid_field not in self.by:
            raise _shape_error(1, stage, "the by clause does not use %s from stage 1" % self.guid_field)

    def _parse_where(self, stage):
        found = _WHERE_STAGE.fullmatch(stage)
        if not found or found.group(1) != self.code_field:
            raise _shape_error(2, stage)
        self.kept_code = int(found.group(2))

    def _parse_coalesce(self, stage):
        if not stage.lower().startswith("eval "):
            raise _shape_error(3, stage)
        self.assignments = []  # (field, helper)
        for part in _split_top_level(stage[5:]):
            found = _COALESCE.fullmatch(part)
            if not found or found.group(1) != found.group(2):
                raise _shape_error(3, stage, "not F=coalesce(F, mvindex(H, 0)): %s" % part)
            self.assignments.append((found.group(1), found.group(3)))

    def _parse_fields(self, stage):
        found = _FIELDS_STAGE.fullmatch(stage)
        if not found:
            raise _shape_error(4, stage)
        self.removed = [name for name in re.split(r"[ ,]+", found.group(1).strip()) if name]

    def is_removed(self, name):
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.removed)

    def describe(self):
        """The steps in words, one string per step."""
        return [
            "1. %s = null when %s is null or matches the regex %s (SPL %s); else lower(trim(%s, %s))"
            % (self.guid_field, self.source_field, self.zero_regex.pattern, json.dumps(self.zero_regex_spl),
               self.source_field, json.dumps(self.trim_chars)),
            "2. eventstats by %s (an event with a null by-field joins no group): over the events with "
            "%s=%d, the distinct sorted values of %s"
            % (", ".join(self.by), self.code_field, self.source_code,
               ", ".join("%s as %s" % pair for pair in self.collected)),
            "3. keep only the events with %s=%d, in order" % (self.code_field, self.kept_code),
            "4. %s" % "; ".join("%s = %s if not null, else the first of %s" % (field, field, helper)
                                for field, helper in self.assignments),
            "5. remove the fields %s" % " ".join(self.removed),
        ]


def parse_definition(definition):
    """Steps from a macro definition string."""
    return Steps(definition)


def load_steps(path=MACROS_CONF):
    """Steps read from the [classifyport_enrich_process] macro in `path`."""
    return Steps(macro_definition(path))


def describe(path=MACROS_CONF):
    """The enrichment steps as read from the macro in `path`, one string per step."""
    return load_steps(path).describe()


# ---------------------------------------------------------------- replay

def _get(event, name):
    """The event's value of `name`, None when null; reads ALIASES when the field is absent."""
    value = event.get(name)
    if value is None and name not in event and name in ALIASES:
        value = event.get(ALIASES[name])
    return value


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")


def _number(value):
    """A decimal number in a field value ("3", "03", "3.0"); None for anything else, spaces included."""
    return float(value) if isinstance(value, str) and _NUMBER.match(value) else None


def _equals(value, number):
    """SPL `F=N` for a field value: numeric when the value is a number, else textual; null never equal."""
    if value is None or isinstance(value, list):
        return False if value is None else any(_equals(item, number) for item in value)
    as_number = _number(value)
    if as_number is not None:
        return as_number == number
    return value == str(number)


def _values_of(value):
    if value is None:
        return []
    return [item for item in value if item is not None] if isinstance(value, list) else [value]


def _guid(steps, event):
    value = _get(event, steps.source_field)
    if value is None or isinstance(value, list):
        return None  # multivalue ProcessGuid: not something Sysmon produces; never grouped
    if steps.zero_regex.search(value):
        return None
    return value.strip(steps.trim_chars).lower()


def enrich(events, steps=None, macros_path=MACROS_CONF):
    """The Event ID 3 events of `events`, in input order, enriched as the macro does.

    `events` is an iterable of dicts (Sysmon field names; EventCode or EventID
    "1"/"3"; host, or Computer when host is absent). `steps` defaults to the
    macro read from `macros_path`. Returns new dicts; the inputs are unchanged.
    """
    if steps is None:
        steps = load_steps(macros_path)
    work = []
    for event in events:
        row = dict(event)
        guid = _guid(steps, event)
        if guid is None:
            row.pop(steps.guid_field, None)
        else:
            row[steps.guid_field] = guid
        work.append(row)

    # eventstats values(eval(if(code=N, F, null()))) as H by B...
    groups = {}
    keys = []
    for row in work:
        key = tuple(_get(row, name) for name in steps.by)
        if any(part is None for part in key):
            keys.append(None)
            continue
        key = tuple(tuple(part) if isinstance(part, list) else part for part in key)
        keys.append(key)
        bucket = groups.setdefault(key, dict((helper, set()) for _, helper in steps.collected))
        if _equals(_get(row, steps.code_field), steps.source_code):
            for field, helper in steps.collected:
                bucket[helper].update(_values_of(_get(row, field)))
    for row, key in zip(work, keys):
        if key is None:
            continue
        for _, helper in steps.collected:
            values = sorted(groups[key][helper])
            if values:
                row[helper] = values if len(values) > 1 else values[0]
            else:
                row.pop(helper, None)

    out = []
    for row in work:
        if not _equals(_get(row, steps.code_field), steps.kept_code):
            continue
        for field, helper in steps.assignments:  # eval F=coalesce(F, mvindex(H, 0))
            if row.get(field) is not None:
                continue
            first = _values_of(row.get(helper))
            if first:
                row[field] = first[0]
            else:
                row.pop(field, None)
        for name in [name for name in row if steps.is_removed(name)]:
            del row[name]
        out.append(row)
    return out


# ---------------------------------------------------------------- command line

def main(argv=None):
    parser = argparse.ArgumentParser(description="Replay the classifyport_enrich_process macro.")
    parser.add_argument("files", nargs="*", help="JSON-lines event files (EID 1 and EID 3 together)")
    parser.add_argument("--macros", default=MACROS_CONF, help="macros.conf to read (default: the app's)")
    args = parser.parse_args(argv)
    try:
        steps = load_steps(args.macros)
    except (OSError, MacroShapeError) as error:
        sys.stderr.write("enrich: %s\n" % error)
        return 2
    if not args.files:
        print("\n".join(steps.describe()))
        return 0
    events = []
    for name in args.files:
        try:
            with open(name, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            events.append(json.loads(line))
                        except ValueError as error:
                            sys.stderr.write("enrich: %s:%d: not JSON (%s)\n" % (name, number, error))
                            return 2
        except OSError as error:
            sys.stderr.write("enrich: %s\n" % error)
            return 2
    for event in enrich(events, steps):
        sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
