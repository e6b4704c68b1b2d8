"""logitd.torch against the Swift definitions on shared inputs.

The fixtures come from two Swift tests, run here with ``swift test --skip-build --filter TorchParity``:
``Tests/LossesTests/TorchParityFixtureTests.swift`` (losses, negative draws, a cache and the Swift
replay loaders' batches on it) and ``Tests/OptimTests/TorchParityOptimFixtureTests.swift`` (MoClip,
Adam-atan2 and AdamW steps, the fast atan2). They are skipped with a message when the Swift test
binary is not built (``swift build --build-tests``) or torch is not installed. To use fixtures
written earlier instead, set ``LOGITD_PARITY_FIXTURE`` and ``LOGITD_PARITY_OPTIM_FIXTURE`` to them.

Tolerances: losses and gradients 1e-5, optimizer steps 1e-6 (absolute); replay batches exactly.
The largest differences seen are printed (and written to ``$LOGITD_PARITY_REPORT`` if set).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Any

import numpy as np

from support import REPO
from torch_support import HAVE_TORCH, backward, requires_torch

if HAVE_TORCH:
    import torch

    from logitd.replay import ReplayOptions, ReplaySource, ReplayState, draw_negatives, epoch_order
    from logitd.torch import (CandidateBatch, MoClip, ReplayIterableDataset, atan2_over_square_root,
                              full_softmax_loss, restricted_softmax_loss, sampled_tail_loss, training_lr_scheduler,
                              warmup_cosine)

LOSS_TOL = 1e-5
OPTIM_TOL = 1e-6
SEEN: dict[str, float] = {}


def note(key: str, value: float) -> None:
    SEEN[key] = max(SEEN.get(key, 0.0), value)


def swift_test_binary() -> str | None:
    for root in (os.path.join(REPO, ".build", "debug"), os.path.join(REPO, ".build", "release")):
        if os.path.isdir(root):
            for name in os.listdir(root):
                if name.endswith("PackageTests.xctest"):
                    return os.path.join(root, name)
    return None


class Fixtures:
    """Runs the Swift fixture tests once per process (or reads the files named by the environment)."""

    _loaded: tuple[dict[str, Any], dict[str, Any]] | None = None
    _tmp: str | None = None

    @classmethod
    def load(cls) -> tuple[dict[str, Any], dict[str, Any]]:
        if cls._loaded is not None:
            return cls._loaded
        given, given_optim = os.environ.get("LOGITD_PARITY_FIXTURE"), os.environ.get("LOGITD_PARITY_OPTIM_FIXTURE")
        if given and given_optim and os.path.isfile(given) and os.path.isfile(given_optim):
            losses, optim = given, given_optim
        else:
            if swift_test_binary() is None:
                raise unittest.SkipTest(f"the Swift test binary is not built in {REPO}/.build (run `swift build "
                                        "--build-tests`); the Swift parity fixtures cannot be produced")
            if shutil.which("swift") is None:
                raise unittest.SkipTest("`swift` is not on PATH; the Swift parity fixtures cannot be produced")
            cls._tmp = tempfile.mkdtemp(prefix="logitd-parity-")
            losses = os.path.join(cls._tmp, "losses.json")
            optim = os.path.join(cls._tmp, "optim.json")
            env = dict(os.environ, LOGITD_PARITY_FIXTURE=losses, LOGITD_PARITY_OPTIM_FIXTURE=optim)
            run = subprocess.run(["swift", "test", "--skip-build", "--filter", "TorchParity"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=3600)
            if run.returncode == 0 and not (os.path.isfile(losses) and os.path.isfile(optim)):
                raise unittest.SkipTest("the Swift test binary has no TorchParity tests (built before they were "
                                        "added?); run `swift build --build-tests`")
            if run.returncode != 0 or not (os.path.isfile(losses) and os.path.isfile(optim)):
                raise AssertionError(f"swift test --filter TorchParity failed ({run.returncode}):\n"
                                     f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
        with open(losses) as f:
            loss_fixture = json.load(f)
        with open(optim) as f:
            optim_fixture = json.load(f)
        cls._loaded = (loss_fixture, optim_fixture)
        return cls._loaded


def tearDownModule() -> None:
    if SEEN:
        lines = "\n".join(f"  {k}: {v:.3g}" for k, v in sorted(SEEN.items()))
        print(f"\nlargest |torch − Swift| differences:\n{lines}", file=sys.stderr)
        if os.environ.get("LOGITD_PARITY_REPORT"):
            with open(os.environ["LOGITD_PARITY_REPORT"], "w") as f:
                json.dump(SEEN, f, indent=1, sort_keys=True)
    if Fixtures._tmp and not os.environ.get("LOGITD_PARITY_KEEP"):
        shutil.rmtree(Fixtures._tmp, ignore_errors=True)


def f32(values: list[float]) -> Any:
    return torch.tensor(np.asarray(values, dtype=np.float32))


@requires_torch
class LossParity(unittest.TestCase):
    fixture: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        cls.fixture = Fixtures.load()[0]

    def problem(self, index: int) -> tuple[Any, Any, Any, dict[str, Any]]:
        p = self.fixture["problems"][index]
        h = f32(p["hidden"]).reshape(p["n"], p["d"]).requires_grad_()
        w = f32(p["weight"]).reshape(p["vocab"], p["d"]).requires_grad_()
        batch = CandidateBatch(torch.tensor(p["setOffsets"]), torch.tensor(p["ids"]), f32(p["logprobs"]),
                               torch.tensor(p["gold"]), torch.tensor(p["mask"], dtype=torch.uint8))
        return h, w, batch, p

    def test_negative_draws(self) -> None:
        for d in self.fixture["draws"]:
            self.assertEqual(draw_negatives(d["count"], d["vocab"], int(d["seed"]), int(d["draw"])), d["ids"], d)
        for case in self.fixture["cases"]:
            if case["loss"] == "tail":
                p = self.fixture["problems"][case["problem"]]
                self.assertEqual(draw_negatives(min(case["negatives"], p["vocab"]), p["vocab"], int(case["seed"]),
                                                int(case["draw"])), case["drawn"])

    def test_losses_and_gradients(self) -> None:
        self.assertGreaterEqual(len(self.fixture["cases"]), 10)
        for case in self.fixture["cases"]:
            with self.subTest(case["name"]):
                h, w, batch, p = self.problem(case["problem"])
                if case["loss"] == "restricted":
                    out = restricted_softmax_loss(h, w, batch, case["kdAlpha"], case["temperature"])
                elif case["loss"] == "tail":
                    out = sampled_tail_loss(h, w, batch, case["negatives"], case["kdAlpha"], int(case["seed"]),
                                            int(case["draw"]))
                else:
                    out = full_softmax_loss(h, w, batch.gold, batch.mask, chunk_rows=2)
                backward(out.loss)
                r = case["result"]
                self.assertEqual(out.supervised, r["supervised"])
                diffs = {"loss": abs(float(out.loss.detach()) - r["loss"]),
                         "cross_entropy": abs(float(out.cross_entropy) - r["crossEntropy"]),
                         "distillation": abs(float(out.distillation) - r["distillation"])}
                dh = h.grad if h.grad is not None else torch.zeros_like(h)
                dw = w.grad if w.grad is not None else torch.zeros_like(w)
                diffs["dH"] = float(np.max(np.abs(dh.numpy().ravel() - np.asarray(case["dH"]))))
                diffs["dW"] = float(np.max(np.abs(dw.numpy().ravel() - np.asarray(case["dW"]))))
                for key, value in diffs.items():
                    note(f"{case['loss']} {key}", value)
                    self.assertLessEqual(value, LOSS_TOL, f"{case['name']}: {key} differs by {value}")


@requires_torch
class OptimizerParity(unittest.TestCase):
    fixture: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        cls.fixture = Fixtures.load()[1]

    def test_fast_atan2_is_bit_identical(self) -> None:
        t = self.fixture["atan2"]
        y = torch.tensor(np.asarray(t["y"], dtype=np.uint32).view(np.float32))
        w = torch.tensor(np.asarray(t["w"], dtype=np.uint32).view(np.float32))
        got = atan2_over_square_root(y, w).numpy().view(np.uint32)
        want = np.asarray(t["out"], dtype=np.uint32)
        different = int(np.sum(got != want))
        note("atan2 lanes not bit-identical", float(different))
        self.assertEqual(different, 0, f"{different} of {len(want)} lanes differ")

    def test_schedule(self) -> None:
        s = self.fixture["schedule"]
        schedule = warmup_cosine(s["peak"], s["warmupSteps"], s["totalSteps"], s["minimum"])
        for run in self.fixture["runs"]:
            for t, step in enumerate(run["steps"], start=1):
                self.assertEqual(schedule(t), step["lr"], f"step {t}")

    def build(self, run: dict[str, Any]) -> tuple[torch.optim.Optimizer, list[torch.nn.Parameter], Any]:
        names = [t["name"] for t in run["tensors"]]
        params = [torch.nn.Parameter(f32(v).reshape(t["shape"])) for v, t in zip(run["initial"], run["tensors"])]
        by_name = dict(zip(names, params))
        c = run["config"]
        peak = self.fixture["schedule"]["peak"]
        groups = [{"params": [by_name[n] for n in g["tensors"]], "weight_decay": g["weightDecay"]} for g in run["groups"]]
        opt: torch.optim.Optimizer
        if c["optimizer"] == "adamw":
            opt = torch.optim.AdamW(groups, lr=peak, betas=(c["beta1"], c["beta2"]), eps=c["epsilon"])
        else:
            opt = MoClip(groups, lr=peak, betas=(c["beta1"], c["beta2"]), a=c["a"], b=c["b"], clip=c["clip"],
                         max_angle=c.get("maxAngle", math.pi / 2), granularity=c["granularity"],
                         second_moment_from_clipped=c["secondMomentFromClippedGradient"],
                         bias_correction=c["biasCorrection"])
        s = self.fixture["schedule"]
        # The fixture's schedule is LRSchedule.training(peak: 0.02, warmup: 2, steps: 7).
        scheduler = training_lr_scheduler(opt, warmup=s["warmupSteps"], steps=s["totalSteps"])
        by_index = [by_name[n] for n in names]
        return opt, by_index, scheduler

    def test_steps(self) -> None:
        self.assertGreaterEqual(len(self.fixture["runs"]), 8)
        for run in self.fixture["runs"]:
            with self.subTest(run["name"]):
                opt, params, scheduler = self.build(run)
                moclip = run["config"]["optimizer"] == "moclip"
                for t, step in enumerate(run["steps"], start=1):
                    for g in opt.param_groups:
                        self.assertEqual(float(np.float32(g["lr"])), step["lr"], f"lr at step {t}")
                    for p, grad in zip(params, step["grads"]):
                        p.grad = f32(grad).reshape(p.shape)
                    opt.step()
                    scheduler.step()
                    key = "moclip" if moclip else "adamw"
                    for name, values in (("values", [p.detach() for p in params]),
                                         ("m", [opt.state[p]["exp_avg"] for p in params]),
                                         ("v", [opt.state[p]["exp_avg_sq"] for p in params])):
                        for got, want in zip(values, step[name]):
                            diff = float(np.max(np.abs(got.numpy().ravel().astype(np.float64) - np.asarray(want))))
                            note(f"{key} {name}", diff)
                            if moclip:
                                bits = int(np.sum(got.numpy().ravel() != np.asarray(want, dtype=np.float32)))
                                note("moclip elements not bit-identical", float(bits))
                            self.assertLessEqual(diff, OPTIM_TOL, f"{run['name']} step {t} {name}")
                    if moclip:
                        tel = opt.last_telemetry  # type: ignore[attr-defined]
                        self.assertEqual(tel["clipped_fraction"], step["clippedFraction"], f"step {t}")
                        if step["meanAngle"] is None:
                            self.assertIsNone(tel["mean_angle_before_clip"])
                        else:
                            self.assertAlmostEqual(tel["mean_angle_before_clip"], step["meanAngle"], delta=1e-9)
                        self.assertAlmostEqual(tel["max_coordinate_step"], step["maxCoordinateStep"], delta=1e-7)
                self.assertTrue(any(s["clippedFraction"] > 0 for s in run["steps"]) or run["config"].get("clip") == "off"
                                or not moclip or run["config"].get("maxAngle", 0) >= math.pi)


@requires_torch
class ReplayParity(unittest.TestCase):
    fixture: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        cls.fixture = Fixtures.load()[0]["replay"]
        if not os.path.isdir(cls.fixture["cache"]):
            raise unittest.SkipTest(f"the fixture's cache {cls.fixture['cache']} is gone")

    @staticmethod
    def options(run: dict[str, Any]) -> ReplayOptions:
        return ReplayOptions(seed=int(run["seed"]), shuffle=run["shuffle"], window=run["window"], rank=run["rank"],
                             world_size=run["worldSize"], remainder=run["remainder"], max_tokens=run["maxTokens"],
                             max_sequence_length=run["maxSequenceLength"])

    def test_snapshot_order_and_batches_equal_the_swift_loader(self) -> None:
        for run in self.fixture["runs"]:
            with self.subTest(run["name"]):
                source = ReplaySource(self.fixture["cache"], run["datasets"])
                options = self.options(run)
                self.assertEqual(source.snapshot.hash_hex, run["snapshotHash"])
                self.assertEqual(source.snapshot.sequences, run["sequences"])
                self.assertEqual(source.order(run["epoch"], options).tolist(), run["order"])
                self.assertEqual(epoch_order(source.snapshot, options.seed, run["epoch"], options.window,
                                             options.shuffle).tolist(), run["order"])
                batches = list(source.batches(source.initial_state(run["epoch"], options), options))
                self.assertEqual(len(batches), len(run["batches"]))
                for got, want in zip(batches, run["batches"]):
                    self.assertEqual([list(r) for r in got.row_sources], want["rows"])
                    self.assertEqual(got.row_offsets.tolist(), want["rowOffsets"])
                    for name, key in (("inputs", "inputs"), ("targets", "targets"), ("mask", "mask"),
                                      ("set_offsets", "setOffsets"), ("ids", "ids")):
                        self.assertEqual(getattr(got, name).tolist(), want[key], name)
                    self.assertTrue(np.array_equal(got.logprobs, np.asarray(want["logprobs"], dtype=np.float32)))
                    self.assertEqual(got.state_after.to_dict(), json.loads(want["state"]))

    def test_torch_dataset_delivers_the_swift_batches_and_resumes_from_swift_states(self) -> None:
        for run in self.fixture["runs"][:4]:
            with self.subTest(run["name"]):
                o = self.options(run)
                kw = dict(seed=o.seed, epoch=run["epoch"], shuffle=o.shuffle, window=o.window, rank=o.rank,
                          world_size=o.world_size, remainder=o.remainder, max_tokens=o.max_tokens,
                          max_sequence_length=o.max_sequence_length)
                ds = ReplayIterableDataset(self.fixture["cache"], run["datasets"], **kw)
                for workers in (0, 2):
                    ds.set_epoch(run["epoch"])   # the single-process pass consumed the epoch
                    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
                    got = list(loader)
                    self.assertEqual(len(got), len(run["batches"]), f"{workers} workers")
                    for b, want in zip(got, run["batches"]):
                        self.assert_padded_equals_packed(b, want)
                # Resume from the Swift state after batch k: exactly the remaining Swift batches.
                for k in (0, len(run["batches"]) // 2, len(run["batches"]) - 1):
                    fresh = ReplayIterableDataset(self.fixture["cache"], run["datasets"], **kw)
                    fresh.load_state_dict(json.loads(run["batches"][k]["state"]))
                    rest = list(fresh)
                    self.assertEqual(len(rest), len(run["batches"]) - k - 1)
                    for b, want in zip(rest, run["batches"][k + 1:]):
                        self.assert_padded_equals_packed(b, want)
                    self.assertEqual(fresh.state_dict(), json.loads(run["batches"][-1]["state"]))

    def assert_padded_equals_packed(self, b: dict[str, Any], want: dict[str, Any]) -> None:
        valid = b["attention_mask"].bool()
        self.assertEqual(b["input_ids"][valid].tolist(), want["inputs"])
        self.assertEqual(b["targets"][valid].tolist(), want["targets"])
        self.assertEqual(b["loss_mask"][valid].long().tolist(), want["mask"])
        self.assertEqual(valid.sum(1).tolist(), np.diff(want["rowOffsets"]).tolist())
        self.assertEqual(b["sources"].tolist(), want["rows"])
        cb = CandidateBatch.from_padded(b)
        self.assertEqual(cb.set_offsets.tolist(), want["setOffsets"])
        self.assertEqual(cb.ids.tolist(), want["ids"])
        self.assertTrue(np.array_equal(cb.logprobs.numpy(), np.asarray(want["logprobs"], dtype=np.float32)))
        self.assertEqual(b["state"], json.loads(want["state"]))
        gi = b["gold_index"][valid]
        assert cb.gold is not None
        self.assertTrue(torch.equal(cb.ids[cb.set_offsets[:-1] + gi], cb.gold))

    def test_a_swift_state_of_another_layout_is_refused(self) -> None:
        run = self.fixture["runs"][1]
        state = ReplayState.from_dict(json.loads(run["batches"][0]["state"]))
        ds = ReplayIterableDataset(self.fixture["cache"], run["datasets"], seed=int(run["seed"]), rank=0,
                                   world_size=run["worldSize"], max_tokens=run["maxTokens"],
                                   max_sequence_length=run["maxSequenceLength"])
        with self.assertRaises(ValueError):
            ds.load_state_dict(state.to_dict())


if __name__ == "__main__":
    unittest.main()
