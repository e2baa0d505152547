"""The conf files, lookups, searchbnf, metadata, app.conf and app.manifest agree with each other and the code.

Confs are read with ksconf's parser in strict mode (duplicate stanzas or keys
fail); the command's options and the lookup file names and required columns are
read from the Python source with `ast`, so splunklib is never imported here.
"""
import ast
import csv
import glob
import json
import os
import re

import pytest

from ksconf.conf.parser import PARSECONF_STRICT_NC, parse_conf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = "classifyport"
COMMAND_SOURCE = os.path.join(ROOT, "bin", "classifyport.py")
LOOKUPS_SOURCE = os.path.join(ROOT, "bin", "portclassify", "lookups.py")
CLASSIFIER_SOURCE = os.path.join(ROOT, "bin", "portclassify", "classifier.py")
LOOKUP_CONSTANTS = ("PROCESSES", "PORTS", "INTERNAL_NETWORKS", "ALLOWLIST", "FIELD_PROFILES", "TECHNIQUES", "RISK")
# Confs Splunk defines (each has a spec in $SPLUNK_HOME/etc/system/README); any other needs README/<name>.conf.spec.
SPLUNK_CONFS = {"app", "commands", "searchbnf", "transforms", "props", "savedsearches", "macros",
                "collections", "eventtypes", "tags", "indexes", "inputs", "server", "restmap", "web",
                "alert_actions", "distsearch", "limits"}
# Data types searchbnf knows without a stanza of ours.
BNF_BUILTIN_TYPES = {"field", "bool", "string", "int", "num", "wc-field", "wc-string"}

CONF_FILES = sorted(glob.glob(os.path.join(ROOT, "default", "*.conf"))) + [os.path.join(ROOT, "metadata", "default.meta")]


def conf(relpath):
    return parse_conf(os.path.join(ROOT, relpath), profile=PARSECONF_STRICT_NC)


def _tree(path):
    with open(path, encoding="utf-8") as handle:
        return ast.parse(handle.read(), filename=path)


def _module_constants(path):
    """{name: literal value} of the module's top-level NAME = <literal> assignments."""
    constants = {}
    for node in _tree(path).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


def _command_options():
    """{option name: the Option(...) call node} declared on ClassifyPortCommand."""
    for node in _tree(COMMAND_SOURCE).body:
        if isinstance(node, ast.ClassDef) and node.name == "ClassifyPortCommand":
            options = {}
            for item in node.body:
                if (isinstance(item, ast.Assign) and isinstance(item.value, ast.Call)
                        and getattr(item.value.func, "id", getattr(item.value.func, "attr", None)) == "Option"):
                    for target in item.targets:
                        options[target.id] = item.value
            return options
    pytest.fail("bin/classifyport.py declares no class ClassifyPortCommand")


def _required_columns():
    """{lookup constant name: required column tuple} from the _rows(app_root, CONSTANT, required) calls."""
    found = {}
    for function in ast.walk(_tree(LOOKUPS_SOURCE)):
        if not isinstance(function, ast.FunctionDef):
            continue
        local = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    local[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
        for node in ast.walk(function):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_rows" and len(node.args) == 3:
                constant, required = node.args[1], node.args[2]
                assert isinstance(constant, ast.Name), ast.dump(node)
                if isinstance(required, ast.Name):
                    columns = local[required.id]
                else:
                    columns = ast.literal_eval(required)
                found.setdefault(constant.id, set()).update(columns)
    return found


def _csv_header(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows, "%s is empty" % path
    return [cell.strip().lower() for cell in rows[0]], rows[1:]


# --- every conf parses, without inline comments ---------------------------------

@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_conf_parses_strictly(path):
    parsed = parse_conf(path, profile=PARSECONF_STRICT_NC)
    assert parsed, "%s has no stanza" % path


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_inline_comments(path):
    """Splunk has no inline comments: a `#` after a value or header would become part of it."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    problems = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            if not re.fullmatch(r"\[[^\]]*\]", stripped):
                problems.append("line %d: text after the stanza header: %r" % (number, line))
            continue
        value = line.split("=", 1)[1] if "=" in line else line
        if re.search(r"(^|\s)#", value):
            problems.append("line %d: inline comment: %r" % (number, line))
    assert not problems, "%s:\n%s" % (os.path.relpath(path, ROOT), "\n".join(problems))


def test_every_conf_is_splunks_or_has_a_spec():
    for path in glob.glob(os.path.join(ROOT, "default", "*.conf")):
        name = os.path.basename(path)[:-len(".conf")]
        if name not in SPLUNK_CONFS:
            assert os.path.isfile(os.path.join(ROOT, "README", name + ".conf.spec")), \
                "default/%s.conf is not a Splunk conf and has no README/%s.conf.spec" % (name, name)


# --- transforms.conf, lookups/ and the loader -----------------------------------

def test_transforms_lookups_and_code_name_the_same_files():
    transforms = conf("default/transforms.conf")
    constants = _module_constants(LOOKUPS_SOURCE)
    missing = [name for name in LOOKUP_CONSTANTS if name not in constants]
    assert not missing, "bin/portclassify/lookups.py lost %s" % missing
    in_code = {constants[name] for name in LOOKUP_CONSTANTS}
    stanzas = {stanza: settings for stanza, settings in transforms.items() if stanza.startswith(APP + "_")}
    in_transforms = set()
    for stanza, settings in stanzas.items():
        assert "filename" in settings, "[%s] has no filename" % stanza
        assert settings["filename"] == stanza + ".csv", "[%s] should name %s.csv" % (stanza, stanza)
        assert os.path.isfile(os.path.join(ROOT, "lookups", settings["filename"])), settings["filename"]
        in_transforms.add(settings["filename"])
    on_disk = {os.path.basename(path) for path in glob.glob(os.path.join(ROOT, "lookups", "*.csv"))}
    assert in_transforms == in_code, {"only in transforms.conf": in_transforms - in_code,
                                      "only in lookups.py": in_code - in_transforms}
    assert on_disk == in_code, {"only in lookups/": on_disk - in_code, "missing from lookups/": in_code - on_disk}
    assert set(transforms) == set(stanzas), "transforms.conf has stanzas not named classifyport_*"


def test_lookup_headers_have_the_columns_the_loader_requires():
    constants = _module_constants(LOOKUPS_SOURCE)
    required = _required_columns()
    assert set(required) == set(LOOKUP_CONSTANTS), "no _rows(...) call found for %s" % (
        set(LOOKUP_CONSTANTS) - set(required))
    for name in LOOKUP_CONSTANTS:
        filename = constants[name]
        header, rows = _csv_header(os.path.join(ROOT, "lookups", filename))
        missing = sorted(required[name] - set(header))
        assert not missing, "%s lacks column(s) %s the loader requires (header: %s)" % (filename, missing, header)
        assert len(header) == len(set(header)) and all(header), "%s header %s" % (filename, header)
        for number, row in enumerate(rows, start=2):
            if any(cell.strip() for cell in row):
                assert len(row) == len(header), "%s row %d has %d cells, header has %d" % (
                    filename, number, len(row), len(header))


def test_cidr_match_types_name_a_column():
    transforms = conf("default/transforms.conf")
    for stanza, settings in transforms.items():
        match_type = settings.get("match_type", "")
        for column in re.findall(r"CIDR\((\w+)\)", match_type):
            header, _ = _csv_header(os.path.join(ROOT, "lookups", settings["filename"]))
            assert column.lower() in header, "[%s] match_type %s: no such column" % (stanza, match_type)


# --- commands.conf --------------------------------------------------------------

def test_commands_conf():
    command = conf("default/commands.conf")[APP]
    assert command["filename"] == "classifyport.py"
    assert os.path.isfile(os.path.join(ROOT, "bin", command["filename"]))
    assert command["chunked"].lower() == "true"
    assert command["python.version"] == "python3"
    required = {part.strip() for part in command["python.required"].split(",")}
    assert {"3.9", "3.13"} <= required, command["python.required"]


# --- searchbnf.conf -------------------------------------------------------------

@pytest.fixture(scope="module")
def bnf():
    return conf("default/searchbnf.conf")


def test_searchbnf_documents_the_command(bnf):
    entry = bnf.get(APP + "-command")
    assert entry is not None, "searchbnf.conf has no [%s-command]" % APP
    for key in ("syntax", "shortdesc", "description", "usage"):
        assert entry.get(key, "").strip(), "[%s-command] has no %s" % (APP, key)
    assert entry["syntax"].startswith(APP), entry["syntax"]
    examples = sorted(key for key in entry if re.fullmatch(r"example\d+", key))
    assert 2 <= len(examples) <= 3, examples
    for key in examples:
        assert "| " + APP in entry[key] or entry[key].startswith(APP), entry[key]
        assert entry.get("comment" + key[len("example"):], "").strip(), "%s has no comment" % key


def test_searchbnf_mentions_every_option(bnf):
    entry = bnf[APP + "-command"]
    options = _command_options()
    assert options, "ClassifyPortCommand declares no Option"
    for name in options:
        pattern = r"(?<![\w-])%s=" % re.escape(name)
        assert re.search(pattern, entry["syntax"]), "syntax does not mention %s=" % name
        assert re.search(pattern, entry["description"]), "description does not mention %s=" % name


def test_searchbnf_lists_no_unknown_option(bnf):
    entry = bnf[APP + "-command"]
    options = set(_command_options())
    in_syntax = set(re.findall(r"\(\s*([A-Za-z_]+)=", entry["syntax"]))
    assert in_syntax == options, {"undeclared": in_syntax - options, "undocumented": options - in_syntax}
    for key, value in entry.items():
        if re.fullmatch(r"example\d+", key):
            after = value.split("| " + APP, 1)[-1].split("|", 1)[0]
            used = set(re.findall(r"(?<![\w\"])([A-Za-z_]+)=", after))
            assert used <= options, "%s uses unknown option(s) %s" % (key, used - options)


def test_searchbnf_choices_match_the_code(bnf):
    """mode=(filter|annotate) and direction=(outbound|any) list exactly the values the command accepts."""
    entry = bnf[APP + "-command"]
    constants = _module_constants(CLASSIFIER_SOURCE)
    checked = 0
    for name, call in _command_options().items():
        for keyword in call.keywords:
            value = keyword.value
            if (keyword.arg == "validate" and isinstance(value, ast.Call)
                    and getattr(value.func, "attr", None) == "Set" and value.args
                    and isinstance(value.args[0], ast.Starred)):
                allowed = set(constants[value.args[0].value.id])
                choice = re.search(r"(?<![\w-])%s=\(([^)]*)\)" % re.escape(name), entry["syntax"])
                assert choice, "syntax should list %s=(%s)" % (name, "|".join(sorted(allowed)))
                assert set(choice.group(1).split("|")) == allowed, (name, choice.group(1), allowed)
                for item in allowed:
                    assert "%s=%s" % (name, item) in entry["description"] or item in entry["description"]
                checked += 1
    assert checked >= 2


def test_searchbnf_types_are_defined(bnf):
    entry = bnf[APP + "-command"]
    for kind in set(re.findall(r"<([\w-]+)>", entry["syntax"])) - BNF_BUILTIN_TYPES:
        assert kind in bnf and bnf[kind].get("syntax"), "syntax uses <%s> but searchbnf.conf has no [%s]" % (kind, kind)


# --- metadata/default.meta ------------------------------------------------------

def _export(meta, kind, name=None):
    for stanza in ([kind + "/" + name] if name else []) + [kind, ""]:
        if stanza in meta and "export" in meta[stanza]:
            return meta[stanza]["export"]
    return "none"


def _readers(meta, kind, name=None):
    for stanza in ([kind + "/" + name] if name else []) + [kind, ""]:
        if stanza in meta and "access" in meta[stanza]:
            match = re.search(r"read\s*:\s*\[([^\]]*)\]", meta[stanza]["access"])
            return {part.strip() for part in match.group(1).split(",")} if match else set()
    return set()


def test_metadata_exports_command_and_lookups_system_wide():
    meta = conf("metadata/default.meta")
    assert _export(meta, "commands", APP) == "system"
    assert "*" in _readers(meta, "commands", APP)
    for stanza in conf("default/transforms.conf"):
        if stanza.startswith(APP + "_"):
            assert _export(meta, "transforms", stanza) == "system", stanza
            assert _export(meta, "lookups", stanza + ".csv") == "system", stanza
            assert "*" in _readers(meta, "lookups", stanza + ".csv")
    assert _export(meta, "searchbnf", APP + "-command") == "system"


# --- app.conf and app.manifest --------------------------------------------------

@pytest.fixture(scope="module")
def manifest():
    with open(os.path.join(ROOT, "app.manifest"), encoding="utf-8") as handle:
        return json.load(handle)


def test_app_id_is_the_same_everywhere(manifest):
    app = conf("default/app.conf")
    assert app["package"]["id"] == app["id"]["name"] == APP
    assert manifest["info"]["id"]["name"] == APP


def test_app_conf_and_manifest_agree(manifest):
    app = conf("default/app.conf")
    info = manifest["info"]
    assert app["ui"]["label"] == info["title"]
    assert app["launcher"]["description"] == info["description"]
    assert app["launcher"]["author"] in [author["name"] for author in info["author"]]
    for key in ("license", "releaseNotes"):
        text = info[key]["text"]
        assert text and os.path.isfile(os.path.join(ROOT, text)), "%s.text %r is not a file" % (key, text)
    # The command runs on indexers in distributed searches.
    assert "_distributed" in manifest["supportedDeployments"]
    assert "_indexers" in manifest["targetWorkloads"]

