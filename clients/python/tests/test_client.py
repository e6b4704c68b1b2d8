"""The standard-library client: ``logitd.client``, the ``logitd_client`` shim of a plain checkout,
and ``example_teacher.py`` against a real daemon, run as the Swift suite runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unittest

from support import PACKAGE_ROOT, TempDir, daemon

import logitd.client


class Client(TempDir):
    def test_shim_reexports_the_package_client(self) -> None:
        import logitd_client
        for name in ("Client", "LogitdError", "SharedSlots", "encode_sets", "encode_logits", "MAGIC"):
            self.assertIs(getattr(logitd_client, name), getattr(logitd.client, name))

    def test_importing_logitd_needs_no_numpy(self) -> None:
        code = "import sys, logitd, logitd.client, logitd_client; print('numpy' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE_ROOT, capture_output=True, check=True, text=True)
        self.assertEqual(out.stdout.strip(), "False")

    def test_encoders_apply_the_key_rule(self) -> None:
        seq = {"tokens": [1, 2], "sets": [([2], [-0.1], False)]}
        for key, message in [("nul-a\0b", "byte 5 is the control character 0x00"), ("esc\x1b", "0x1B"),
                             ("del\x7f", "0x7F"), ("a\ud800", "not valid UTF-8"), ("k" * 1025, "1..1024"), ("", "1..1024")]:
            with self.subTest(key=key[:10]), self.assertRaisesRegex(ValueError, message):
                logitd.client.encode_sets(10, [dict(seq, key=key)])
        body = logitd.client.encode_sets(10, [dict(seq, key="k" * 1024), dict(seq, key="\x85-\u00e9")])
        self.assertIn(b"k" * 1024, body)

    def test_example_teacher_against_logitd(self) -> None:
        python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
        with daemon(os.path.join(self.tmp, "d")) as url:
            out = subprocess.run([python, os.path.join(PACKAGE_ROOT, "example_teacher.py"), url],
                                 capture_output=True, text=True, cwd="/")
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual(result["stats_sequences"], 5)
        self.assertEqual(result["bad"]["status"], 400)


if __name__ == "__main__":
    unittest.main()
