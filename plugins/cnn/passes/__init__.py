"""The CNN family's optimization passes, in pipeline order (-O2 but one opt-in; inference only).

Each pass is a `RewritePass` of pattern + check + rewrite; every rewrite's module states
its math, and `dlc compile --print-ir` lists what fired and why the rest was declined. Each
names the ops it cannot do without (`needs_ops`): a graph with no conv (and, for the folds,
no batch norm, mul or add) is optimized without importing this family.
"""

from __future__ import annotations

from dlc.plugin_api import LEVEL_OPT_IN, PHASE_FUSION, PHASE_SELECTION, PassInfo

from ..algorithm import ConvAlgorithmSelection
from .fold_batch_norm import fold_batch_norm_pass
from .fold_pad import fold_pad_pass
from .fuse_conv_activation import fuse_conv_activation_pass
from .horizontal_fusion import horizontal_fusion_pass
from .merge_conv_chain import merge_conv_chain_pass
from .reparameterize import reparameterize_pass

PASSES = [
    # First: explicit zero pads become conv padding, so later patterns see each conv's window.
    PassInfo(
        "fold-pad-into-conv",
        fold_pad_pass,
        "Fold an explicit zero pad into the conv that reads it.",
        2,
        PHASE_FUSION,
        needs_ops=frozenset({"conv"}),
    ),
    # Folding norms and affines leaves bare convs (with bias) for the merges below.
    PassInfo(
        "fold-batch-norm",
        fold_batch_norm_pass,
        "Fold inference batch norm and per-channel mul/add into the preceding conv or linear layer.",
        2,
        PHASE_FUSION,
        needs_ops=frozenset({"batch_norm", "mul", "add"}),
    ),
    # Chains of convs with no nonlinearity between them (exposed by the folds) become one conv.
    PassInfo(
        "merge-conv-chain",
        merge_conv_chain_pass,
        "Merge a 1x1 conv with the kxk conv before or after it when that costs less.",
        2,
        PHASE_FUSION,
        needs_ops=frozenset({"conv"}),
    ),
    # After the folds (RepVGG's branches end in batch norms): summed parallel convs become one.
    PassInfo(
        "reparameterize-branches",
        reparameterize_pass,
        "Merge parallel convs (and the identity) on one input whose outputs are summed (RepVGG).",
        2,
        PHASE_FUSION,
        needs_ops=frozenset({"conv", "batch_norm"}),
    ),
    # Last of the merges: it adds splits, which would hide chains and branches from those above.
    PassInfo(
        "fuse-sibling-convs",
        horizontal_fusion_pass,
        "Fuse sibling convs of one input into one conv and a split, where the cost model predicts a gain.",
        2,
        PHASE_FUSION,
        needs_ops=frozenset({"conv"}),
    ),
    # Once every rewrite has settled the convs' final shapes: direct or FFT, per conv, by cost.
    PassInfo(
        "select-conv-algorithm",
        ConvAlgorithmSelection,
        "Direct or FFT convolution per conv node, by predicted cost (--conv-algo overrides).",
        2,
        PHASE_SELECTION,
        needs_ops=frozenset({"conv"}),
    ),
    # Opt-in (--passes): ONNX Runtime makes the same fusion itself, measured no faster here.
    # After algorithm selection, so that only the direct convs it kept become FusedConv.
    PassInfo(
        "fuse-conv-activation",
        fuse_conv_activation_pass,
        "Conv + bias + activation (+ residual add) as ONNX Runtime's FusedConv (not with --portable).",
        LEVEL_OPT_IN,
        PHASE_SELECTION + 100,
        needs_ops=frozenset({"conv"}),
    ),
]
