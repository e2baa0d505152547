"""Renamed binaries, ATT&CK techniques and risk scores through the real protocol, on every interpreter."""
import scpv2


def test_renamed_powershell_is_labelled_with_techniques_and_risk(python):
    events = [
        # powershell.exe copied to C:\Users\Public\update.exe, enriched with its Event ID 1 OriginalFileName.
        {"Image": r"C:\Users\Public\update.exe", "OriginalFileName": "PowerShell.EXE", "DestinationPort": "443",
         "DestinationIp": "93.184.216.34", "Initiated": "true"},
        {"Image": r"C:\Users\Public\svc.exe", "OriginalFileName": "CertUtil.exe", "DestinationPort": "80",
         "DestinationIp": "10.1.2.3", "Initiated": "true"},
        {"Image": r"C:\Users\Public\svc.exe", "DestinationPort": "80", "DestinationIp": "10.1.2.3", "Initiated": "true"},
    ]
    result = scpv2.run(["mode=annotate"], [events[:1], events[1:]], python=python)
    assert result.returncode == 0, result.messages()
    got = [(r["ImageBasename"], r["SuspicionLabel"], r["MatchedOn"], r["mitre_technique_id"], r["risk_score"])
           for r in result.records]
    assert got == [
        ("update.exe", "ScriptInterpreter", "OriginalFileName", ["T1059", "T1059.001", "T1071.001"], "56"),
        ("svc.exe", "LOLBin", "OriginalFileName", ["T1105", "T1140", "T1071.001"], "40"),
        ("svc.exe", "", "", "", ""),
    ]
    assert result.records[0]["OriginalFileName"] == "PowerShell.EXE"
