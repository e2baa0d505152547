"""`make validate` (tools/validate.py): the report on the samples and the real corpus, and its exit status."""
import glob
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SHARED

import validate

VALIDATE = os.path.join(ROOT, "tools", "validate.py")
ART_TITLES = ("Test 1: PowerShell C2 Simulation over HTTPS Port 443",
              "Test 2: certutil.exe HTTP Download over Port 80",
              "Test 3: DNS Tunneling Simulation via nslookup Long Labels",
              "Test 4: bitsadmin.exe HTTPS Download over Port 443")
HAVE_SHARED = os.path.isdir(os.path.join(SHARED, "data", "sysmon"))


def run_validate(*args):
    proc = subprocess.run([sys.executable, VALIDATE] + list(args), capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_package.py"), "--outdir", str(outdir)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return glob.glob(os.path.join(str(outdir), "classifyport-*.tar.gz"))[0]


@pytest.fixture(scope="module")
def make_validate():
    """`make validate` as a user runs it (it builds the package first); skipped without make or .venv."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if not os.path.exists(os.path.join(ROOT, ".venv", "bin", "python")):
        pytest.skip(".venv is missing (make venv)")
    proc = subprocess.run(["make", "--no-print-directory", "validate"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


def _section(stdout, title):
    """The lines of one ART test's section."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("  Test ", "Data sets"))), len(lines))
    return "\n".join(lines[start:end])


class TestMakeValidate:
    def test_exit_status_and_result(self, make_validate):
        status, out, err = make_validate
        assert status == 0, out[-3000:] + err[-2000:]
        assert out.rstrip().splitlines()[-1].startswith("Result: PASS")
        assert "[FAIL]" not in out and "Traceback" not in err

    def test_the_four_original_tests(self, make_validate):
        out = make_validate[1]
        for title in ART_TITLES:
            assert title in out
        assert "[PASS] 1 sample event labelled ScriptInterpreter" in _section(out, ART_TITLES[0])
        assert "[PASS] 1 sample event labelled LOLBin" in _section(out, ART_TITLES[1])
        assert "[PASS] 10 sample events labelled LOLBin" in _section(out, ART_TITLES[2])

    def test_bitsadmin_cannot_fire_by_design_with_real_evidence(self, make_validate):
        section = _section(make_validate[1], ART_TITLES[3])
        assert "CANNOT FIRE BY DESIGN" in section
        assert "svchost.exe -k netsvcs -p -s BITS" in section
        assert "[PASS] the sample BITS-service svchost.exe -> 93.184.216.34:443 is not labelled (process not listed)" \
            in section
        if not HAVE_SHARED:
            assert "is not here" in section
            return
        assert "real evidence, OTRF cmd_bitsadmin_download_psh_script: 2 network events, by image: svchost.exe=2" \
            in section
        evidence = [line.strip() for line in section.splitlines() if line.startswith("      svchost.exe -> ")]
        assert len(evidence) == 2 and all(line.endswith("not fired (process not listed)") for line in evidence)
        assert "[PASS] the real bitsadmin dataset's network events are svchost.exe, none bitsadmin.exe" in section

    def test_every_data_set_is_reported_with_labels_and_reasons(self, make_validate):
        out = make_validate[1]
        sets = out[out.index("Data sets"):]
        assert "  samples  (" in sets
        assert "fired 21: LOLBin=14, ScriptInterpreter=6, UnusualSystemProcess=1" in sets
        assert "not fired 16: process not listed=13, port not watched=1, inbound=2" in sets
        if HAVE_SHARED:
            for name in ("otrf_security_datasets", "splunk_attack_data", "mdecrevoisier_evtx_to_mitre_attack",
                         "omerbenamram_evtx", "splunk_raw"):
                assert "  %s  (" % name in sets
            assert "read: EventID 1: 102, EventID 3: 1707; 1707 sent to the command" in sets
            assert "fired 56: ScriptInterpreter=56" in sets  # splunk_attack_data: the PowerShell beacons
            assert "read: EventID 1: 21, EventID 3: 1; 1 sent to the command" in sets  # splunk_raw XML
        assert "unexplained" not in sets.replace("(0 unexplained)", "")


class TestValidateTool:
    def test_fails_when_a_sample_test_stops_firing(self, tmp_path):
        """An app whose process lookup lost powershell.exe: test 1 fails and the exit status says so."""
        if not os.path.exists(os.path.join(ROOT, "bin", "splunklib", "__init__.py")):
            pytest.skip("bin/splunklib is not vendored (make vendor)")
        app = tmp_path / "classifyport"
        for folder in ("bin", "default", "lookups"):
            shutil.copytree(os.path.join(ROOT, folder), str(app / folder),
                            ignore=shutil.ignore_patterns("__pycache__"))
        lookup = app / "lookups" / "classifyport_processes.csv"
        lines = lookup.read_text(encoding="utf-8").splitlines(True)
        lookup.write_text("".join(line for line in lines if not line.startswith("powershell.exe,")), encoding="utf-8")
        status, out, err = run_validate("--app-dir", str(app), "--no-shared")
        assert status == 1, err
        assert "[FAIL] 1 sample event labelled ScriptInterpreter" in out
        assert "Result: FAIL" in out and "real data: not present" in out

    def test_missing_package(self, tmp_path):
        status, out, err = run_validate("--package", str(tmp_path / "classifyport-0.0.0.tar.gz"))
        assert status == 2 and out == "" and "run `make package` first" in err and "Traceback" not in err

    def test_samples_only(self, package):
        status, out, err = run_validate("--package", package, "--no-shared")
        assert status == 0, out + err
        assert "real evidence: the OTRF cmd_bitsadmin_download_psh_script data is not here" in out
        assert "otrf_security_datasets" not in out


class TestReasons:
    PORTS = [(80, 80), (443, 443), (53, 53)]

    @pytest.mark.parametrize("record, expected", [
        ({"SuspicionLabel": "LOLBin", "ImageBasename": "certutil.exe", "DestPort": "80"}, None),
        ({"ImageBasename": "", "DestPort": "443"}, "missing field"),
        ({"ImageBasename": "powershell.exe", "DestPort": "", "IsScriptInterpreter": "1"}, "missing field"),
        ({"ImageBasename": "chrome.exe", "DestPort": "443", "IsScriptInterpreter": "0", "IsLOLBin": "0",
          "IsUnusualSystem": "0", "MatchedOn": ""}, "process not listed"),
        ({"ImageBasename": "powershell.exe", "DestPort": "5985", "IsScriptInterpreter": "1"}, "port not watched"),
        ({"ImageBasename": "pwsh.exe", "DestPort": "53", "IsScriptInterpreter": "1", "Initiated": "false"}, "inbound"),
        ({"ImageBasename": "certutil.exe", "DestPort": "80", "IsLOLBin": "1", "Initiated": "true",
          "Allowlisted": "1"}, "allowlisted"),
        ({"ImageBasename": "certutil.exe", "DestPort": "80", "IsLOLBin": "1"}, "unexplained"),
        ({"ImageBasename": "update.exe", "DestPort": "8080", "MatchedOn": "OriginalFileName"}, "port not watched"),
    ])
    def test_reason(self, record, expected):
        assert validate.reason(record, self.PORTS) == expected

    def test_watched_ports_read_ranges(self, tmp_path):
        (tmp_path / "lookups").mkdir()
        (tmp_path / "lookups" / "classifyport_ports.csv").write_text("\ufeffPort,Service\r\n80,http\r\n8000-8100,alt\r\n",
                                                                      encoding="utf-8")
        assert validate.watched_ports(str(tmp_path)) == [(80, 80), (8000, 8100)]
