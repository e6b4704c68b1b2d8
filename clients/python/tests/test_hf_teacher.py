"""End to end: the Hugging Face teacher (``python -m logitd.teach``, transformers loading the GGUF
file) against the Swift teacher (``logit-teach --model models/smollm2/base``, the same GGUF imported
and dequantized to f32) on the first 40 lines of the GPL-3 (448 tokens, 4 windows of ≤ 128).

Both record into one running logitd (datasets ``hf`` and ``swift``, τ 0.95, K 1…64, log-prob
scale 64); ``logitctl export`` of both must give the same keys and tokens, and per position the
same ids in the same (canonical) order — except where the two independent forwards' log-probs
differ within TOLERANCE, which may swap near-equal candidates or move the τ cut by one id. Measured
on this text: 447/447 positions identical, stored log-probs equal except 6 of 18,749 candidates one
code (1/64 nat) apart. The figures are printed to stderr.

Skipped when transformers, gguf or accelerate are missing, or the model files are absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import unittest

from support import PACKAGE_ROOT, REPO, TempDir, binary, daemon, logitctl_export

GGUF = os.path.join(REPO, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
SWIFT_MODEL = os.path.join(REPO, "models", "smollm2", "base")
TEXT = "/usr/share/common-licenses/GPL-3"
LINES = 40
SEQ_LEN = 128
#: Largest accepted |Δ stored log-prob| of one id in both sets: two codes at the default scale 64.
TOLERANCE = 2 / 64

MISSING = [m for m in ("torch", "transformers", "gguf", "accelerate") if importlib.util.find_spec(m) is None]
REASON = ("needs " + ", ".join(MISSING) + " (pip install transformers gguf accelerate)" if MISSING else
          f"{GGUF} is missing" if not os.path.isfile(GGUF) else
          f"{SWIFT_MODEL} is missing" if not os.path.isdir(SWIFT_MODEL) else
          f"{TEXT} is missing" if not os.path.isfile(TEXT) else "")


def compare(swift: list[dict], hf: list[dict], tolerance: float = TOLERANCE) -> dict:
    """Figures of the comparison; raises AssertionError on a difference the tolerance does not explain."""
    assert [x["key"] for x in swift] == [x["key"] for x in hf], "keys differ"
    positions = identical = candidates = changed = 0
    max_delta = 0.0
    for a, b in zip(swift, hf):
        assert a["tokens"] == b["tokens"], f"tokens of {a['key']} differ"
        for t, (sa, sb) in enumerate(zip(a["sets"], b["sets"])):
            positions += 1
            la, lb = dict(zip(sa["ids"], sa["logprobs"])), dict(zip(sb["ids"], sb["logprobs"]))
            for i in la.keys() & lb.keys():
                d = abs(la[i] - lb[i])
                max_delta = max(max_delta, d)
                changed += d > 0
                candidates += 1
                assert d <= tolerance, f"{a['key']} position {t} id {i}: log-probs {la[i]} and {lb[i]}"
            if sa["ids"] == sb["ids"] and sa["gold_forced"] == sb["gold_forced"]:
                identical += 1
                continue
            # Allowed: the log-prob sequences (canonical order = descending) agree within the
            # tolerance index by index — swaps of near-equal candidates — and the lengths differ
            # by at most one (the τ cut moved by one id, or a gold forced on one side only).
            where = f"{a['key']} position {t}: {sa} vs {sb}"
            assert abs(len(sa["ids"]) - len(sb["ids"])) <= 1, where
            for x, y in zip(sa["logprobs"], sb["logprobs"]):
                assert abs(x - y) <= tolerance, where
    return {"positions": positions, "identical_sets": identical, "identical_fraction": identical / max(positions, 1),
            "common_candidates": candidates, "candidates_with_different_lp": changed, "max_abs_delta_lp": max_delta,
            "tolerance": tolerance}


@unittest.skipIf(bool(REASON), REASON)
class HuggingFaceTeacherMatchesSwift(TempDir):
    def test_gguf_teacher_against_logit_teach(self) -> None:
        corpus = os.path.join(self.tmp, "gpl3-head.txt")
        with open(TEXT) as src, open(corpus, "w") as dst:
            dst.writelines(src.readlines()[:LINES])
        cache = os.path.join(self.tmp, "cache")
        env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        policy = ["--tau", "0.95", "--kmin", "1", "--kmax", "64", "--seq-len", str(SEQ_LEN)]
        with daemon(cache) as url:
            swift = subprocess.run([binary("logit-teach"), "--model", SWIFT_MODEL, "--corpus", corpus, "--daemon", url,
                                    "--dataset", "swift", "--batch", "2", *policy], capture_output=True, text=True)
            self.assertEqual(swift.returncode, 0, swift.stderr + swift.stdout)
            hf = subprocess.run([sys.executable, "-m", "logitd.teach", "--model", GGUF, "--corpus", corpus, "--daemon", url,
                                 "--dataset", "hf", "--batch", "2", "--threads", "1", "--device", "cpu", *policy],
                                capture_output=True, text=True, env=env)
            self.assertEqual(hf.returncode, 0, hf.stderr[-4000:] + hf.stdout)
            self.assertIn("4 to record", hf.stdout)
            # A re-run resumes: every key is already stored, no forward.
            again = subprocess.run([sys.executable, "-m", "logitd.teach", "--model", GGUF, "--corpus", corpus, "--daemon",
                                    url, "--dataset", "hf", "--threads", "1", "--device", "cpu", *policy],
                                   capture_output=True, text=True, env=env)
            self.assertEqual(again.returncode, 0, again.stderr[-4000:])
            self.assertIn("4 already stored, 0 to record", again.stdout)
        a = [json.loads(x) for x in logitctl_export(cache, "swift").splitlines()]
        b = [json.loads(x) for x in logitctl_export(cache, "hf").splitlines()]
        self.assertEqual(len(a), 4)
        figures = compare(a, b)
        print(f"\nHF (transformers, GGUF Q4_1) vs Swift (logit-teach, f32 import): {json.dumps(figures)}", file=sys.stderr)
        self.assertEqual(figures["positions"], 447)
        self.assertGreaterEqual(figures["identical_fraction"], 0.95)


if __name__ == "__main__":
    unittest.main()
