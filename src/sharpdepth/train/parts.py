"""Which parameters train: parts of each family's network, freezing, and LoRA.

Parts are named by the official state-dict prefixes each family declares
(`Family.training.parts`, e.g. Depth Pro: `encoder.*`, `decoder.*`, `head.*`, `fov.*`;
Depth Anything: `pretrained.*` (DINOv2), `depth_head.*` but the head,
`depth_head.scratch.output_conv*`), so the same `--train` / `--freeze` words mean the
same thing for every family. A parameter no prefix claims is an error, never a silent
"decoder": a family that declares no parts cannot be fine-tuned.

`--train head` trains the head, `decoder` the decoder and the head, `fov` only the FOV
head, `all` everything; `--freeze` then removes parts from that set.

LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022):
W x + (alpha / r) B A x on every attention projection (`qkv`, `proj` of modules whose
class name contains "Attention"), A (r x in) Kaiming-uniform, B (out x r) zero, so
training starts from the loaded model exactly. `official_state_dict` folds B A into W,
which keeps checkpoints in the official layout. (A small explicit implementation:
`peft` would pull transformers and accelerate for a dozen lines.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import OptionError
from .settings import training_facts

TRAINED_BY: dict[str, frozenset[str]] = {
    "all": frozenset({"encoder", "decoder", "head", "fov"}),
    "decoder": frozenset({"decoder", "head"}),
    "head": frozenset({"head"}),
    "fov": frozenset({"fov"}),
}


def part_of(family: str, key: str) -> str:
    """Part of a parameter by its official key, from the family's declared prefixes."""
    part = training_facts(family).part_of(key)
    if part is None:
        raise OptionError(f"{family}: parameter {key!r} belongs to no declared part (Family.training.parts)")
    return part


def trainable_parts(family: str, train: str, freeze: tuple[str, ...]) -> frozenset[str]:
    available = training_facts(family).part_names
    if train == "fov" and "fov" not in available:
        raise OptionError(f"--train fov: the {family} family has no FOV head")
    parts = (TRAINED_BY[train] - set(freeze)) & available
    if not parts:
        raise OptionError(f"--train {train} with --freeze {','.join(freeze) or '-'} leaves nothing to train")
    return parts


def set_trainable(net: nn.Module, family: str, parts: frozenset[str]) -> int:
    """requires_grad by part; returns the number of trainable parameters."""
    count = 0
    for key, param in net.named_parameters():
        param.requires_grad_(part_of(family, key) in parts)
        count += param.numel() if param.requires_grad else 0
    if count == 0:
        raise OptionError(f"no parameter of this model belongs to {', '.join(sorted(parts))}")
    return count


def freeze_batchnorm(net: nn.Module) -> None:
    """BatchNorm layers stay in eval mode: at fine-tuning batch sizes (1-4) their running
    statistics would be replaced by noise, and per-process statistics would also break
    the equality of data-parallel and single-process training."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


# ------------------------------------------------------------------ LoRA
class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update (alpha / r) * B A."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        self.rank = rank
        self.scaling = alpha / rank
        dev, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=dev, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=dev, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def delta(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


def add_lora(net: nn.Module, rank: int, alpha: float | None = None) -> list[str]:
    """Wrap every attention `qkv` / `proj` Linear in LoRA; returns the wrapped module names."""
    wrapped: list[str] = []
    for name, module in list(net.named_modules()):
        if "attention" not in type(module).__name__.lower():
            continue
        for child_name in ("qkv", "proj"):
            child = getattr(module, child_name, None)
            if isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, rank, float(alpha or rank)))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        raise OptionError("--lora-rank: this model has no attention projections to adapt")
    return wrapped


def lora_modules(net: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in net.named_modules() if isinstance(m, LoRALinear)}


def official_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The network's weights in the official key layout: LoRA folded in, float32, CPU."""
    state = {k: v.detach() for k, v in net.state_dict().items()}
    for name, module in lora_modules(net).items():
        for key in [k for k in state if k.startswith(f"{name}.")]:
            del state[key]
        weight = module.base.weight.detach().float() + module.delta().detach().float()
        state[f"{name}.weight"] = weight
        if module.base.bias is not None:
            state[f"{name}.bias"] = module.base.bias.detach()
    return {k: v.float().cpu().contiguous() if v.is_floating_point() else v.cpu() for k, v in state.items()}


def lora_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """What an exact LoRA resume needs beyond the merged checkpoint: A, B and the base weights."""
    out: dict[str, torch.Tensor] = {}
    for name, module in lora_modules(net).items():
        out[f"{name}.lora_A"] = module.lora_A.detach().cpu().clone()
        out[f"{name}.lora_B"] = module.lora_B.detach().cpu().clone()
        out[f"{name}.base.weight"] = module.base.weight.detach().cpu().clone()
        if module.base.bias is not None:
            out[f"{name}.base.bias"] = module.base.bias.detach().cpu().clone()
    return out
