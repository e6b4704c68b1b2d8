#!/usr/bin/env python3
"""Prints the closing line of a parallel `swift test` run from its xUnit report:
`tests: N passed, N failed, N skipped`, and each failure with its message.
(With --parallel, swift test itself ends on Swift Testing's line, which counts no XCTest.)"""
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
passed = failed = skipped = 0
for case in root.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
        node = case.find("failure") if case.find("failure") is not None else case.find("error")
        print(f"FAILED {case.get('classname')}.{case.get('name')}: {node.get('message', '')}")
    elif case.find("skipped") is not None:
        skipped += 1
    else:
        passed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
