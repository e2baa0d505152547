"""`make fuzz` records its results in BENCHMARKS.md (tools/fuzz_report.py), and `make bench` keeps them."""
import os
import subprocess
import sys

import bench
import fuzz_report

SAMPLE = '''
import pytest
from hypothesis import given, settings, strategies as st


@pytest.mark.parametrize("side", ["left", "right"])
@settings(max_examples=17, database=None)
@given(st.integers())
def test_property(side, number):
    assert isinstance(number, int)


def test_plain():
    pass


@pytest.mark.xfail(strict=True, reason="an open bug")
def test_open_bug():
    assert False


def test_broken():
    assert 1 == 2
'''


def run_sample(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
                           "--junitxml=%s" % junit, "test_sample.py"], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:]  # test_broken fails
    return str(junit)


def test_the_section_counts_outcomes_and_examples(tmp_path):
    junit = run_sample(tmp_path)
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\nthe bench's tables\n")
    assert fuzz_report.main([junit, str(report)]) == 0
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nthe bench's tables\n")
    section = text.split(fuzz_report.FUZZ_BEGIN)[1].split(fuzz_report.FUZZ_END)[0]
    assert "| result | 3 passed, 1 failed, 0 skipped, 1 xfailed, in " in section
    assert "| `test_sample` | 3 | 1 | 1 |" in section
    assert "| `test_property[left]` | 17 | 0 | 0 |" in section and "| `test_property[right]` | 17 | 0 | 0 |" in section
    # A second run replaces the section; it does not add one.
    assert fuzz_report.main([junit, str(report)]) == 0
    assert report.read_text().count(fuzz_report.FUZZ_BEGIN) == 1


def test_a_missing_or_broken_junit_file_is_reported_not_a_traceback(tmp_path, capsys):
    assert fuzz_report.main([str(tmp_path / "nothing.xml"), str(tmp_path / "r.md")]) == 2
    (tmp_path / "bad.xml").write_text("<testsuites><testcase")
    assert fuzz_report.main([str(tmp_path / "bad.xml"), str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert "fuzz_report:" in err and "Traceback" not in err
    assert not os.path.exists(str(tmp_path / "r.md"))


def test_make_bench_keeps_the_fuzz_section(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    section = fuzz_report.FUZZ_BEGIN + "\n## Fuzzing (`make fuzz`)\n\n| result | 9 passed |\n" + fuzz_report.FUZZ_END
    path.write_text("# Benchmarks\n\nold tables\n\n" + section + "\n")
    options = bench.parse_args(["--suites", "startup"])
    info = {"cpu": "test", "cores": 2, "ram": "1 GiB", "os": "x", "python": "CPython 3", "python_path": "python",
            "sdk": "2.1.1", "commit": "abc", "under_test": "here"}
    bench.write_report(str(path), options, info, {}, {}, 1.0, ["--x"])
    text = path.read_text()
    assert "old tables" not in text and "## Machine and run" in text
    assert text.count(section) == 1 and text.rstrip().endswith(fuzz_report.FUZZ_END)
