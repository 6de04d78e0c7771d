"""Prune attention heads of a small LLaMA-style language model, compact it and save it with HuggingFace.

Loads the LLaMA-style decoder of :func:`nodeprune.zoo.trained_llama_lm` (grouped-query attention, byte-level
tokens, trained on the bundled Python-docstrings corpus and cached in ``~/.cache/nodeprune/zoo``), scores
its attention heads with ``LossDelta`` (the increase of the next-token loss when a head is removed), removes
half of each layer's heads with target-mode ``Greedy``, checks that the masked model equals the compacted one,
and that the compacted model survives ``save_pretrained`` and loading back. Prints perplexities along the way.

Why half per layer: under grouped-query attention (4 query heads sharing 2 key/value heads here) the compacted
attention repeats every kept key/value head for the same number of query heads, so ``compact()`` needs every
group that keeps a query head to keep as many as the others. Any 2 of 4 heads per layer satisfy that (one per
group, or a whole group); 1 of 4 (25 %) masks exactly but does not compact, and ``compact()`` says so.

Run: ``python examples/transformer_pruning.py`` (quick: ``TINY_LM`` trained for 60 steps, seconds; what CI
runs) or ``python examples/transformer_pruning.py --full`` (the 1.05 M-parameter model: minutes, or about
21 minutes on two cores the first time, to train it). Needs ``pip install 'nodeprune[transformers]'``.
"""

from __future__ import annotations

import sys
import tempfile
import warnings

import torch

import nodeprune as npr
from nodeprune import zoo


def main(full: bool) -> int:
    if full:
        trained = zoo.trained_llama_lm()  # 4 layers, 4 query / 2 key-value heads, SwiGLU MLP of 512
        validation, test = trained.validation[0][:16], trained.test[0][:64]
    else:
        trained = zoo.trained_llama_lm(zoo.TINY_LM, zoo.Recipe(steps=60, batch_size=8, threads=1), block_size=32)
        validation, test = trained.validation[0][:8], trained.test[0][:16]
    model = trained.model
    loss = npr.CausalLMLoss()  # next-token cross-entropy, mean over tokens
    pruning_set = ({"input_ids": validation}, validation)  # (keyword inputs, labels); labels are shifted by the loss

    # The masker recognises LLaMA's attention modules and MLPs without tracing; the residual-stream writers
    # (o_proj, down_proj outputs) feed RMSNorm and residual additions, so they are not exact layers: leave them out.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = npr.Masker(model, {"input_ids": validation[:1]})
    masker = npr.Masker(model, {"input_ids": validation[:1]}, exclude=[x.name for x in probe.layers if not x.exact])
    print(f"discovery path: {masker.discovery_path}")
    for layer in masker.layers:
        print(f"  {layer.name:<32} {layer.kind:<13} {layer.size:>4} nodes")
    heads = [layer.name for layer in masker.layers if layer.kind == "head"]

    before = npr.evaluate(model, ({"input_ids": test}, test), loss).perplexity
    scores = npr.LossDelta(pruning_set, loss).score(masker, heads[0])
    print(f"\nLossDelta of the heads of {heads[0]} (perplexity-loss increase when removed): {scores.tolist()}")

    strategy = npr.Greedy(npr.LossDelta(pruning_set, loss), ratio=0.5, layers=heads, verbose=False)
    result = strategy.prune(masker)
    print(f"removed {result.count} heads ({result.evaluations} single-head evaluations): {result.removed}")
    with masker.applied():
        masked_logits = model(input_ids=test[:4]).logits
        after = npr.evaluate(model, ({"input_ids": test}, test), loss).perplexity
    print(f"test perplexity: {before:.3f} before, {after:.3f} with half of the heads removed")

    small = masker.compact()  # a new model: q/k/v rows and o_proj columns cut, config updated
    difference = (small(input_ids=test[:4]).logits - masked_logits).abs().max().item()
    print(f"compacted: {zoo.parameter_count(model):,} → {zoo.parameter_count(small):,} parameters; "
          f"max |masked − compacted| = {difference:.2e}")  # fmt: skip
    assert difference < 1e-4, "the compacted model must equal the masked one"

    with tempfile.TemporaryDirectory() as folder:
        small.save_pretrained(folder)  # config.json records the kept heads per layer (nodeprune_kept)
        back = npr.load_pruned(type(small), folder)  # rebuilds the per-layer shapes, then loads the weights
        loaded, compacted = back(input_ids=test[:4]).logits, small(input_ids=test[:4]).logits
    print(
        f"save_pretrained → load_pruned round trip: max |loaded − compacted| = {(loaded - compacted).abs().max():.2e}"
    )
    assert torch.allclose(loaded, compacted, rtol=1e-5, atol=1e-5), "the loaded model must equal the compacted one"
    return 0


if __name__ == "__main__":
    sys.exit(main(full="--full" in sys.argv[1:]))
