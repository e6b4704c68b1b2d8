"""``examples/train_torch.py``: 2 steps of the tail-aware loss (KD α 0.5) with MoClip on a tiny
synthetic cache and a random tiny Llama; the losses are finite and the parameters moved."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import unittest

from support import PACKAGE_ROOT, TempDir, teach

MISSING = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]


@unittest.skipIf(bool(MISSING), f"needs {', '.join(MISSING)} (pip install torch transformers)")
class TrainExample(TempDir):
    def test_two_steps(self) -> None:
        cache = os.path.join(self.tmp, "cache")
        teach(cache, "tiny", positions=600, vocab=1000, seq_len=64)
        env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        out = subprocess.run([sys.executable, os.path.join(PACKAGE_ROOT, "examples", "train_torch.py"), "--cache", cache,
                              "--dataset", "tiny", "--tiny", "--steps", "2", "--lr", "1e-3", "--max-tokens", "128"],
                             capture_output=True, text=True, env=env)
        self.assertEqual(out.returncode, 0, out.stderr[-4000:])
        lines = [json.loads(x) for x in out.stdout.splitlines()]
        summary = lines[-1]
        self.assertEqual(summary["done"], 2)
        self.assertTrue(summary["finite"], summary)
        self.assertEqual(len(summary["losses"]), 2)
        self.assertGreater(summary["parameters_changed"], 0)
        self.assertEqual(summary["parameters_changed"], summary["parameters"], summary)
        self.assertTrue(all(x["supervised"] > 0 for x in lines[:-1]))


if __name__ == "__main__":
    unittest.main()
