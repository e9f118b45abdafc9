"""The official SHARP checkpoint layout: which of its tensors prediction never reads.

A released `sharp_*.pt` is the state dict of the official `RGBGaussianPredictor`, loaded
there with `strict=True`. Besides the network `SharpNetwork` builds, it holds tensors that
never affect a prediction:

* `depth_alignment.scale_map_estimator.*`: a small UNet that aligns depth to ground truth
  during training (156 tensors, 2.0 M parameters, the same for every configuration);
* `encoder.{patch,image}_encoder.head.*` of the monodepth network: timm's ImageNet-21k
  classifier heads of the two ViTs (2 x 22.4 M parameters in the released model).

When a file holds any of them, the converter checks that every one is present with its
official shape (so a file of another configuration, or a truncated one, is refused), then
drops them: the network
does not carry 180 MB of dead weights. Everything else must then match the network exactly
(the engine's strict load). `decoder.fusions.4.resnet1.*` is dead too but belongs to Depth
Pro's decoder module, which keeps it (as Depth Pro's own checkpoints do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...family import KeyMapError, StateDict

if TYPE_CHECKING:
    from .network import SharpConfig

ALIGNMENT_PREFIX = "depth_alignment.scale_map_estimator."
VIT_HEADS = ("patch_encoder", "image_encoder")
MONODEPTH_PREFIX = "monodepth_model.monodepth_predictor."

Shape = tuple[int, ...]


def _residual(prefix: str, dim_in: int, dim_hidden: int, dim_out: int) -> dict[str, Shape]:
    """Keys of the UNet's pre-activation residual block (norm, relu, 3x3 conv, twice; 1x1 shortcut
    when the width changes)."""
    keys: dict[str, Shape] = {}
    for index, (cin, cout) in zip((0, 3), ((dim_in, dim_hidden), (dim_hidden, dim_out)), strict=True):
        keys[f"{prefix}residual.{index}.weight"] = (cin,)
        keys[f"{prefix}residual.{index}.bias"] = (cin,)
        keys[f"{prefix}residual.{index + 2}.weight"] = (cout, cin, 3, 3)
        keys[f"{prefix}residual.{index + 2}.bias"] = (cout,)
    if dim_in != dim_out:
        keys[f"{prefix}shortcut.weight"] = (dim_out, dim_in, 1, 1)
        keys[f"{prefix}shortcut.bias"] = (dim_out,)
    return keys


def alignment_shapes(base_width: int = 16, steps: int = 4) -> dict[str, Shape]:
    """The depth-alignment UNet's keys and shapes (official `DepthAlignment` defaults:
    2 input channels, base width 16, 4 down and 4 up steps, 1 output channel)."""
    p = ALIGNMENT_PREFIX
    keys: dict[str, Shape] = {}
    for i in range(steps):
        cin = base_width << i
        keys |= _residual(f"{p}encoder.convs_down.{i}.1.", cin, cin, 2 * cin)
        keys |= _residual(f"{p}encoder.convs_down.{i}.2.", 2 * cin, cin, 2 * cin)
    keys |= {
        f"{p}encoder.conv_in.0.weight": (base_width, 2, 3, 3),
        f"{p}encoder.conv_in.0.bias": (base_width,),
        f"{p}encoder.conv_in.1.weight": (base_width,),
        f"{p}encoder.conv_in.1.bias": (base_width,),
    }
    top = base_width << steps
    for j in range(steps):
        cout = top >> (j + 1)
        cin = top if j == 0 else 4 * cout  # the previous step's output + the encoder's skip
        keys |= _residual(f"{p}decoder.convs_up.{j}.1.", cin, cout // 2, cout)
        keys |= _residual(f"{p}decoder.convs_up.{j}.2.", cout, cout // 2, cout)
    keys |= {
        f"{p}decoder.conv_out.0.weight": (2 * base_width,),
        f"{p}decoder.conv_out.0.bias": (2 * base_width,),
        f"{p}decoder.conv_out.2.weight": (base_width, 2 * base_width, 1, 1),
        f"{p}decoder.conv_out.2.bias": (base_width,),
        f"{p}decoder.conv_out.3.weight": (base_width,),
        f"{p}decoder.conv_out.3.bias": (base_width,),
        f"{p}conv_out.weight": (1, base_width, 1, 1),
        f"{p}conv_out.bias": (1,),
    }
    return keys


def unused_shapes(cfg: SharpConfig) -> dict[str, Shape]:
    """Every checkpoint tensor that prediction never reads and the network does not hold."""
    width = cfg.depth_pro.embed_dim
    heads: dict[str, Shape] = {}
    for vit in VIT_HEADS:
        heads[f"{MONODEPTH_PREFIX}encoder.{vit}.head.weight"] = (cfg.vit_classes, width)
        heads[f"{MONODEPTH_PREFIX}encoder.{vit}.head.bias"] = (cfg.vit_classes,)
    return heads | alignment_shapes()


def from_official(state: StateDict, cfg: SharpConfig) -> StateDict:
    """Official checkpoint -> the network's keys: the never-read tensors are checked, then dropped.

    A file holding none of them is the network's own state dict (as `weights random` or a
    fine-tune writes it): it passes unchanged, and the engine's strict load judges it.
    """
    expected = unused_shapes(cfg)
    if not any(k in state for k in expected):
        return state
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or wrong:
        parts = [
            f"{len(keys)} {label} (e.g. {keys[0]})"
            for label, keys in (("missing", missing), ("wrong shape", wrong))
            if keys
        ]
        raise KeyMapError(f"not an official SHARP checkpoint of this configuration: {'; '.join(parts)}")
    return {k: v for k, v in state.items() if k not in expected}
