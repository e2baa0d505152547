#!/usr/bin/env python3
"""The AppInspect gate: inspect the built package in default and cloud modes and judge the results.

    python tools/appinspect_gate.py [--package dist/classifyport-<version>.tar.gz]

Runs Splunk AppInspect 4.3.x (the splunk-appinspect installed beside this
interpreter, pinned in requirements-dev.txt) twice, offline
(--skip-trusted-libraries-update): once with every default check and once with
--included-tags cloud. The JSON reports go to build/appinspect/<mode>.json.

Exits non-zero when any check's result is failure, error or future_failure
(each is printed with its check name and messages), when AppInspect itself
fails, or when a check that still warns is not named in README.md: the README
must list every remaining warning and why it stays. Remaining warnings are
printed either way; a warning from a check tagged `future` is marked, since
AppInspect may turn it into a failure in a later release.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_ID = "classifyport"
APPINSPECT_SERIES = "4.3."
OUT_DIR = os.path.join(ROOT, "build", "appinspect")
README = os.path.join(ROOT, "README.md")

# mode name: extra arguments for `splunk-appinspect inspect`
MODES = (
    ("default", []),
    ("cloud", ["--included-tags", "cloud"]),
)
BAD_RESULTS = ("failure", "error", "future_failure")


def default_package():
    with open(os.path.join(ROOT, "VERSION"), encoding="utf-8") as handle:
        version = handle.read().strip()
    return os.path.join(ROOT, "dist", "%s-%s.tar.gz" % (APP_ID, version))


def find_appinspect():
    beside = os.path.join(os.path.dirname(sys.executable), "splunk-appinspect")
    if os.path.exists(beside):
        return beside
    return shutil.which("splunk-appinspect")


def appinspect_version():
    try:
        from importlib.metadata import version
        return version("splunk-appinspect")
    except Exception:  # not installed in this interpreter: the CLI may still be on PATH
        return None


def start(executable, package, mode, extra):
    json_path = os.path.join(OUT_DIR, mode + ".json")
    log_path = os.path.join(OUT_DIR, mode + ".log")
    for path in (json_path, log_path):
        if os.path.exists(path):
            os.remove(path)
    command = [executable, "inspect", package, "--skip-trusted-libraries-update",
               "--output-file", json_path, "--data-format", "json", "--max-messages", "all"] + extra
    log = open(log_path, "wb")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return {"mode": mode, "command": command, "process": process, "log": log,
            "json_path": json_path, "log_path": log_path}


def checks_of(report):
    for group in report.get("groups", []):
        for check in group.get("checks", []):
            yield check


def describe_message(message):
    text = (message.get("message") or "").strip()
    where = message.get("message_filename")
    if where and where != "None" and where not in text:
        line = message.get("message_line")
        text += " [%s%s]" % (where, ":%s" % line if line not in (None, "None") else "")
    return text


def judge(run):
    """Return (problems, warnings, summary) for one finished AppInspect run."""
    mode, problems, warnings = run["mode"], [], []
    try:
        with open(run["json_path"], encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        with open(run["log_path"], encoding="utf-8", errors="replace") as handle:
            tail = handle.read()[-3000:]
        problems.append("%s: AppInspect wrote no usable report (%s); exit code %s; log %s ends:\n%s"
                        % (mode, error, run["process"].returncode, os.path.relpath(run["log_path"], ROOT), tail))
        return problems, warnings, {}
    reports = data.get("reports") or []
    if len(reports) != 1:
        problems.append("%s: expected one app report, found %d" % (mode, len(reports)))
    summary = data.get("summary") or {}
    for report in reports:
        if report.get("app_name") != APP_ID:
            problems.append("%s: the report is for app %r, not %r" % (mode, report.get("app_name"), APP_ID))
        ran = 0
        for check in checks_of(report):
            ran += 1
            result, name = check.get("result"), check.get("name")
            messages = [describe_message(m) for m in check.get("messages", [])] or ["(no message)"]
            if result in BAD_RESULTS:
                problems.append("%s: %s %s\n      %s" % (mode, result.upper(), name, "\n      ".join(messages)))
            elif result == "warning":
                warnings.append((name, "future" in (check.get("tags") or []), messages))
        if not ran:
            problems.append("%s: the report lists no checks" % mode)
    for result in BAD_RESULTS:
        if summary.get(result):
            reported = sum(1 for p in problems if p.startswith("%s: %s " % (mode, result.upper())))
            if reported != summary[result]:
                problems.append("%s: summary counts %d %s result(s), the checks show %d"
                                % (mode, summary[result], result, reported))
    if run["process"].returncode != 0 and not problems:
        problems.append("%s: splunk-appinspect exited %d (1: packaging standards failed, 2: exception, 3: error); "
                        "see %s" % (mode, run["process"].returncode, os.path.relpath(run["log_path"], ROOT)))
    return problems, warnings, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default=None, help="the .tar.gz to inspect (default dist/classifyport-<VERSION>.tar.gz)")
    parser.add_argument("--readme", default=README, help="the README that must explain each remaining warning")
    args = parser.parse_args(argv)
    package = os.path.abspath(args.package or default_package())
    if not os.path.isfile(package):
        print("appinspect_gate: %s does not exist; run `make package` first" % os.path.relpath(package), file=sys.stderr)
        return 2
    executable = find_appinspect()
    if executable is None:
        print("appinspect_gate: splunk-appinspect is not installed; run `make venv`", file=sys.stderr)
        return 2
    version = appinspect_version()
    if version is not None and not version.startswith(APPINSPECT_SERIES):
        print("appinspect_gate: splunk-appinspect %s found, the gate needs %sx (requirements-dev.txt)"
              % (version, APPINSPECT_SERIES), file=sys.stderr)
        return 2

    os.makedirs(OUT_DIR, exist_ok=True)
    print("AppInspect %s on %s (modes: %s)" % (version or "?", os.path.relpath(package, ROOT),
                                              ", ".join(mode for mode, _ in MODES)))
    # The two modes are independent runs over the same package: run them side by side.
    runs = [start(executable, package, mode, extra) for mode, extra in MODES]
    for run in runs:
        run["process"].wait()
        run["log"].close()

    all_problems, warned = [], {}
    for run in runs:
        problems, warnings, summary = judge(run)
        all_problems.extend(problems)
        counts = ", ".join("%s %d" % (key, summary.get(key, 0)) for key in
                           ("failure", "error", "future_failure", "warning", "manual_check", "success",
                            "not_applicable", "skipped"))
        print("  %-7s %s  (%s)" % (run["mode"], counts, os.path.relpath(run["json_path"], ROOT)))
        for name, future, messages in warnings:
            warned.setdefault(name, {"modes": [], "future": future, "messages": messages})["modes"].append(run["mode"])

    if warned:
        print("\nRemaining warnings (README.md must name each and say why it stays):")
        for name in sorted(warned):
            entry = warned[name]
            print("  WARNING %s [%s]%s" % (name, ", ".join(entry["modes"]),
                                          " (tagged future: may become a failure)" if entry["future"] else ""))
            for message in entry["messages"]:
                print("      " + message)

    try:
        with open(args.readme, encoding="utf-8") as handle:
            readme = handle.read()
    except OSError:
        readme = ""
    unexplained = sorted(name for name in warned if name not in readme)
    for name in unexplained:
        all_problems.append("%s does not name the remaining warning %s (%s mode): add it to the "
                            "AppInspect warnings table with why it stays" % (os.path.relpath(args.readme, ROOT), name, ", ".join(warned[name]["modes"])))

    if all_problems:
        print("\nAppInspect gate FAILED:", file=sys.stderr)
        for problem in all_problems:
            print("  " + problem, file=sys.stderr)
        return 1
    print("\nAppInspect gate passed: no failure, error or future_failure in %s mode; %d warning(s), each named in %s."
          % (" or ".join(mode for mode, _ in MODES), len(warned), os.path.relpath(args.readme, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
