"""The lookups are the only source of the lists: Python holds none, and the process list is reproducible."""
import ast
import csv
import glob
import os
import subprocess
import sys

from conftest import ROOT, SHARED, shared_path


def _literals():
    for path in glob.glob(os.path.join(ROOT, "bin", "portclassify", "*.py")) + [os.path.join(ROOT, "bin", "classifyport.py")]:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if id(node) not in docstrings and isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
                yield os.path.relpath(path, ROOT), node.value


def _lookup_column(name, column):
    with open(os.path.join(ROOT, "lookups", name), encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]


def test_python_names_no_listed_process_port_or_network():
    processes = {name.lower() for name in _lookup_column("classifyport_processes.csv", "process")}
    stems = {name.rsplit(".", 1)[0] for name in processes}
    ports = {int(port) for port in _lookup_column("classifyport_ports.csv", "port")}
    cidrs = set(_lookup_column("classifyport_internal_networks.csv", "cidr"))
    found = []
    for where, value in _literals():
        if isinstance(value, int):
            if value in ports:
                found.append((where, value))
            continue
        lowered = value.lower()
        if lowered in processes or lowered in stems or value in cidrs:
            found.append((where, value))
    assert found == []


def test_process_lookup_matches_its_origins():
    shared_path("data", "lolbas", "lolbas_binaries.csv")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_process_lookup.py"), "--check",
                           "--shared", SHARED], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_process_lookup_sources_and_lolbas_coverage():
    lolbas_csv = shared_path("data", "lolbas", "lolbas_binaries.csv")
    with open(os.path.join(ROOT, "lookups", "classifyport_processes.csv"), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["source"] for row in rows} == {"original_spl", "original_test", "lolbas"}
    listed = {row["process"] for row in rows}
    with open(lolbas_csv, encoding="utf-8") as handle:
        network_exes = {row["name"].lower() for row in csv.DictReader(handle)
                        if row["network_capable"] == "1" and row["name"].lower().endswith(".exe")}
    assert network_exes - listed == set()
    assert all(row["category"] == "LOLBin" for row in rows if row["source"] == "lolbas")
