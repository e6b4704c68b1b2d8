"""Fine-tune a Hugging Face causal LM from a logitd cache (Stage 1) with ``logitd.torch``.

The tail-aware loss (``sampled_tail_loss``, KD α 0.5: the stored set plus a shared draw of
negatives standing in for the rest of the vocabulary) only gathers the LM-head rows W[S ∪ N] of
each position, never an N × V logits matrix; MoClip updates every parameter.

    python examples/train_torch.py --cache /data/kd-cache --dataset netdocs --model HF_DIR_OR_GGUF --steps 100
    python examples/train_torch.py --cache DIR --dataset NAME --tiny --steps 2     # random 2-layer Llama, no download

Prints one JSON line per step, then a summary line (``{"done": …}``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from logitd.torch import CandidateBatch, MoClip, ReplayIterableDataset, sampled_tail_loss, training_lr_scheduler  # noqa: E402


def load_student(args: argparse.Namespace, vocab: int) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    if args.tiny:
        torch.manual_seed(args.seed)
        return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                            tie_word_embeddings=True))
    if args.model.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(args.model))
        return AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", help="HF model directory, hub id or .gguf file (the student)")
    p.add_argument("--tiny", action="store_true", help="a random tiny Llama with the dataset's vocabulary instead")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-tokens", type=int, default=256, help="positions per batch")
    p.add_argument("--max-sequence-length", type=int, default=128)
    p.add_argument("--negatives", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if not args.tiny and not args.model:
        p.error("give --model or --tiny")
    torch.set_num_threads(args.threads)

    data = ReplayIterableDataset(args.cache, args.dataset, seed=args.seed, max_tokens=args.max_tokens,
                                 max_sequence_length=args.max_sequence_length)
    model = load_student(args, data.vocab_size)
    weight = model.get_output_embeddings().weight                      # V × d (tied to the embedding here)
    if weight.shape[0] != data.vocab_size:
        raise SystemExit(f"the student's vocabulary is {weight.shape[0]}, the dataset's {data.vocab_size}")
    model.train()
    opt = MoClip(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = training_lr_scheduler(opt, warmup=max(1, args.steps // 10), steps=args.steps)
    before = {n: q.detach().clone() for n, q in model.named_parameters()}

    step, epoch, losses = 0, 0, []
    while step < args.steps:
        data.set_epoch(epoch)
        for batch in data:
            mask = batch["attention_mask"]
            out = model.model(input_ids=batch["input_ids"], attention_mask=mask)   # the decoder: final hidden states
            hidden = out.last_hidden_state[mask.bool()]                             # N × d, row-major real positions
            result = sampled_tail_loss(hidden, weight, CandidateBatch.from_padded(batch), negatives=args.negatives,
                                       kd_alpha=0.5, seed=args.seed, draw=opt.steps_taken)
            opt.zero_grad()
            result.loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(result.loss.item())
            print(json.dumps({"step": step, "loss": losses[-1], "ce": result.cross_entropy.item(), "kd": result.distillation.item(),
                              "supervised": result.supervised, "lr": sched.get_last_lr()[0]}), flush=True)
            if step == args.steps:
                break
        epoch += 1
    changed = sum(int(not torch.equal(before[n], q.detach())) for n, q in model.named_parameters())
    print(json.dumps({"done": step, "losses": losses, "finite": all(math.isfinite(x) for x in losses),
                      "parameters": len(before), "parameters_changed": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
