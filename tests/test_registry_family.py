"""The family/registry design: explicit registration, typed specs, load-time validation, loading order."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import sharpdepth
from sharpdepth import registry
from sharpdepth.engine import model as engine_model
from sharpdepth.engine import runtime
from sharpdepth.errors import InputImageError, OptionError, WeightsError
from sharpdepth.family import DataConfig, Family, KeyMapError, ModelSpec
from sharpdepth.models import depth_anything, depth_pro, midas, midas_small
from sharpdepth.models.processing import MapProcessor
from sharpdepth.result import OutputKind
from sharpdepth.weights import checkpoint

SRC = Path(sharpdepth.__file__).parent


# ---------------------------------------------------------------- registry and list_models


def _family_package(name: str):
    """The package `sharpdepth.models.<family name>` (a family is one package, named as it registers)."""
    return importlib.import_module(f"sharpdepth.models.{name}")


def test_every_family_module_registers_its_presets_once():
    families = {name: _family_package(name) for name in registry.list_families()}
    assert len(families) >= 5
    for name, module in families.items():
        assert module.FAMILY.name == name
        names = {s.name for s in registry.list_specs(include_test_only=True, family=name)}
        assert names == {p.name for p in module.PRESETS}
        assert all(registry.get_family(name) is module.FAMILY for _ in names)


def test_list_models_filters_by_kind_family_and_licence():
    metric = set(sharpdepth.list_models(kind="metric_depth"))
    assert "depth-pro" in metric and "depth-anything-v2-metric-indoor-small" in metric
    assert not metric & set(sharpdepth.list_models(kind=OutputKind.RELATIVE_DISPARITY))
    commercial = set(sharpdepth.list_models(license="commercial"))
    non_commercial = set(sharpdepth.list_models(license="non-commercial"))
    # Apple's research licence and CC-BY-NC weights are not for commercial use; MIT and Apache-2.0 are.
    assert {"depth-pro", "depth-anything-v2-base", "depth-anything-v2-large"} <= non_commercial
    assert "depth-anything-v2-metric-indoor-large" in non_commercial  # fine-tuned from a CC-BY-NC model
    assert {"depth-anything-v2-small", "midas-dpt-large-384", "midas-v21-small-256"} <= commercial
    assert not commercial & non_commercial
    assert commercial | non_commercial == set(sharpdepth.list_models())
    for name in commercial:
        assert registry.get_spec(name).license.split()[0] in ("MIT", "Apache-2.0")
    for name in non_commercial:
        apple_research = registry.get_spec(name).license.startswith("Apple Machine Learning Research")
        assert "-base" in name or "-large" in name or "-giant" in name or apple_research
    assert sharpdepth.list_models(family="midas_small") == ["midas-v21-small-256"]
    assert sharpdepth.list_models(kind="metric_depth", family="midas") == []


@pytest.mark.parametrize(
    "kwargs", [{"kind": "depthish"}, {"family": "nope"}, {"license": "free"}], ids=["kind", "family", "license"]
)
def test_list_models_refuses_unknown_filters(kwargs):
    with pytest.raises(OptionError):
        sharpdepth.list_models(**kwargs)


def test_registry_has_no_string_module_lookup():
    """Families are imported by name in code: no importlib, no module-name strings."""
    text = (SRC / "registry.py").read_text()
    assert "importlib" not in text and "FAMILY_MODULES" not in text
    tree = ast.parse(text)
    imported = {
        a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "models"
        for a in node.names
    }
    assert imported == set(registry.list_families())
    assert not (SRC / "engine" / "adapters").exists()
    assert not (SRC / "engine" / "adapter.py").exists() and not (SRC / "weights" / "keymaps").exists()


def test_a_missing_family_module_fails_loudly(monkeypatch):
    """No 'family not written yet' fallback: an import error in a family module propagates."""
    import builtins

    real_import = builtins.__import__

    def broken(name, globals=None, locals=None, fromlist=(), level=0):
        if fromlist and "midas_small" in fromlist:
            missing = "sharpdepth.models.midas_small"
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_ALIASES", {})
    monkeypatch.setattr(registry, "_FAMILIES", {})
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(ModuleNotFoundError, match="midas_small"):
        registry.list_specs()


def test_registering_twice_or_across_families_is_refused():
    spec = registry.get_spec("depth-pro-tiny")
    with pytest.raises(OptionError, match="twice"):
        registry.register(spec)
    with pytest.raises(OptionError, match="twice"):
        registry.register_family(depth_pro.FAMILY, ())
    stranger = dataclasses.replace(spec, name="not-a-da-model")
    with pytest.raises(OptionError, match="does not belong"):
        registry.register_family(dataclasses.replace(depth_anything.FAMILY, name="other"), [stranger])
    assert "other" not in registry.list_families()  # a refused family is not half registered


def test_spec_config_is_typed_by_its_family():
    spec = registry.get_spec("depth-anything-v2-tiny")
    assert isinstance(spec, ModelSpec) and isinstance(spec.model_family, Family)
    assert isinstance(spec.config, depth_anything.DepthAnythingConfig)
    assert spec.family == "depth_anything"


# ---------------------------------------------------------------- data configs


def test_data_configs_state_the_official_pipelines():
    pro = registry.get_spec("depth-pro").data
    assert (pro.input_size, pro.size_rule, pro.input_size_fixed) == (1536, "fixed", True)
    v2, v1 = registry.get_spec("depth-anything-v2-small").data, registry.get_spec("depth-anything-v1-small").data
    assert (v2.input_size, v2.size_rule, v2.multiple_of) == (518, "lower_bound", 14)
    assert v2.output_align_corners and not v1.output_align_corners
    assert v2.mean == (0.485, 0.456, 0.406)
    dpt = registry.get_spec("midas-dpt-large-384").data
    assert (dpt.size_rule, dpt.output_kernel, dpt.mean) == ("minimal", "bicubic", (0.5, 0.5, 0.5))
    assert registry.get_spec("midas-dpt-swin2-tiny-256").data.size_rule == "squash"
    assert registry.get_spec("midas-v21-small-256").data.size_rule == "upper_bound"
    assert all(isinstance(s.data, DataConfig) for s in registry.list_specs(include_test_only=True))


def test_midas_small_config_declares_no_unused_fields():
    fields = {f.name for f in dataclasses.fields(midas_small.MidasSmallConfig)}
    assert not fields & {"image_interpolation", "output_interpolation", "output_align_corners"}


def test_unknown_layout_is_a_key_map_error():
    with pytest.raises(KeyMapError, match="onnx"):
        registry.get_spec("depth-pro-tiny").convert_state_dict({}, "onnx")
    assert issubclass(KeyMapError, WeightsError)


# ---------------------------------------------------------------- load-time validation


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("depth-pro-tiny", 768, "fixed 1536x1536"),
        ("depth-anything-v2-tiny", 7, "input size 7 is too small"),
        ("dpt_large_384", 7, "input size 7 is too small"),
        ("dpt_swin2_tiny_256", 384, "fixed 256x256"),
        ("depth-anything-v2-tiny", 0, "positive"),
        ("depth-anything-v2-tiny", -5, "positive"),
    ],
)
def test_input_size_is_validated_at_load(monkeypatch, name, size, message):
    _forbid_build(monkeypatch)
    with pytest.raises(OptionError, match=message):
        sharpdepth.load(name, input_size=size, random_weights=True)


def _forbid_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building any registered network fail, to prove a failure came before it."""

    def never(self: object, *args: object, **kwargs: object) -> None:
        raise AssertionError("the network must not be built before the options and weights are checked")

    for name in registry.list_families():
        build = registry.get_family(name).build
        assert isinstance(build, type), f"{name}: build is expected to be the network class"
        monkeypatch.setattr(build, "__init__", never)


def test_valid_input_sizes_still_load():
    model = sharpdepth.load("depth-anything-v2-tiny", input_size=140, random_weights=True)
    assert model.input_size == 140
    assert model.processor.network_size(480, 640) == (140, 182)


@pytest.mark.parametrize(
    ("name", "shape"),
    [("depth-anything-v2-tiny", (5, 20000)), ("depth-anything-v2-tiny", (20000, 5)), ("dpt_large_384", (20, 3000))],
)
def test_extreme_aspect_ratio_is_refused_before_allocating(monkeypatch, name, shape):
    from sharpdepth.models import processing

    def no_resize(*args: object) -> np.ndarray:
        raise AssertionError("resized before the size check")

    monkeypatch.setattr(processing, "resize_cubic_cv2", no_resize)
    proc = registry.get_spec(name).processor()
    with pytest.raises(InputImageError, match="too elongated") as err:
        proc.preprocess(np.zeros((*shape, 3), np.uint8))
    assert "\n" not in str(err.value)


def test_depth_anything_limit_is_an_area_multiple_of_the_input_size():
    proc = registry.get_spec("depth-anything-v2-tiny").processor(140)
    assert proc.network_size(100, 1500) == (140, 2100)  # 15:1 fits under 16 x 140^2
    with pytest.raises(InputImageError, match="limit"):
        proc.network_size(100, 1800)


def test_depth_pro_copes_with_any_aspect_ratio():
    proc = registry.get_spec("depth-pro-tiny").processor()
    assert proc.network_size(5, 20000) == (1536, 1536)


def test_extreme_image_through_predict_is_one_line_error():
    model = sharpdepth.load("depth-anything-v2-tiny", random_weights=True)
    with pytest.raises(InputImageError, match="too elongated"):
        model.predict(np.zeros((5, 20000, 3), np.uint8))


# ---------------------------------------------------------------- loading order and memory


def test_weights_are_resolved_before_the_network_is_built(monkeypatch, tmp_path):
    _forbid_build(monkeypatch)
    with pytest.raises(WeightsError, match="no such file"):
        sharpdepth.load("depth-pro", weights=tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="no published weights"):
        sharpdepth.load("depth-pro-tiny")


def _tiny_checkpoint(tmp_path: Path, name: str = "depth-anything-v2-tiny") -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = registry.get_spec(name).build()
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    return path, state


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_meta_build_loads_the_same_values_as_a_plain_load(tmp_path, dtype):
    path, state = _tiny_checkpoint(tmp_path)
    spec = registry.get_spec("depth-anything-v2-tiny")
    resolved = engine_model.ResolvedWeights(path, "auto", "user")
    net = engine_model.load_network(spec, resolved, dtype)
    reference = spec.build()
    reference.load_state_dict(state, strict=True)
    reference = reference.to(dtype)
    ours = net.state_dict()
    assert set(ours) == set(state)
    assert all(not t.is_meta for t in ours.values())
    assert all(torch.equal(ours[k], v) and ours[k].dtype == v.dtype for k, v in reference.state_dict().items())
    x = torch.randn(1, 3, 70, 84).to(dtype)
    with torch.inference_mode():
        assert torch.equal(net.eval()(x), reference.eval()(x))


def test_networks_with_computed_buffers_are_built_normally(tmp_path):
    """Swin-V2's window masks are computed in __init__; a meta build would leave them empty."""
    cfg = midas.MidasDPTConfig(
        backbone=midas.Swin2Config(
            img_size=128, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=8, num_classes=10
        ),
        hooks=(1, 1, 1, 1),
        reassemble_features=(16, 32, 64, 128),
        features=16,
        num_classes=10,
    )
    spec = dataclasses.replace(registry.get_spec("dpt_swin2_tiny_256"), name="swin-test", config=cfg)
    net = spec.build()
    path = tmp_path / "swin.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    loaded = engine_model.load_network(spec, engine_model.ResolvedWeights(path, "official", "user"))
    buffers = dict(loaded.named_buffers())
    assert buffers and all(not b.is_meta for b in buffers.values())
    assert all(torch.equal(b, dict(net.named_buffers())[k]) for k, b in buffers.items())


def test_verified_digest_is_cached_beside_the_checkpoint(monkeypatch, tmp_path):
    path, _ = _tiny_checkpoint(tmp_path)
    calls = []
    real = checkpoint.sha256_file
    monkeypatch.setattr(checkpoint, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    first = sharpdepth.load("depth-anything-v2-tiny", weights=path)
    second = sharpdepth.load("depth-anything-v2-tiny", weights=path)
    assert first.weights_sha256 == second.weights_sha256 == real(path)
    assert len(calls) == 1
    assert path.with_name(path.name + checkpoint.DIGEST_SUFFIX).is_file()
    path.write_bytes(path.read_bytes())  # rewritten: new mtime, so the record no longer applies
    sharpdepth.load("depth-anything-v2-tiny", weights=path)
    assert len(calls) == 2


class Opaque:
    """A non-tensor object a pickled training checkpoint might hold."""


def test_pickled_objects_are_refused_without_torchs_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "cfg": Opaque()}, path)
    with pytest.raises(WeightsError) as err:
        checkpoint.load_state_dict_file(path)
    text = str(err.value)
    assert "refusing to unpickle" in text and "weights_only" not in text and "\n" not in text


def test_load_signature_is_explicit():
    import inspect

    params = inspect.signature(sharpdepth.load).parameters
    assert list(params) == [
        "name", "weights", "device", "precision", "input_size", "download", "random_weights", "max_pixels",
        "compile", "cuda_graphs", "precision_guard", "backend",
    ]  # fmt: skip
    assert inspect.signature(engine_model.load).parameters.keys() == params.keys()
    for option in ("input_size", "precision", "random_weights", "max_pixels", "compile", "cuda_graphs"):
        assert option in (sharpdepth.load.__doc__ or "")


# ---------------------------------------------------------------- precision


def test_native_bf16_is_read_from_cpu_flags(tmp_path):
    runtime.cpu_has_native_bf16.cache_clear()
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert not runtime.cpu_has_native_bf16(str(avx2))
    assert runtime.cpu_has_native_bf16(str(amx))
    assert not runtime.cpu_has_native_bf16(str(tmp_path / "absent"))
    runtime.cpu_has_native_bf16.cache_clear()


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_and_bf16_warning_follow_capability(monkeypatch, caplog, native):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert runtime.resolve_precision("auto", cpu) == (torch.bfloat16 if native else torch.float32)
    with caplog.at_level(logging.WARNING, logger="sharpdepth"):
        assert runtime.resolve_precision("bf16", cpu) == torch.bfloat16
    warned = [r for r in caplog.records if "native bf16" in r.getMessage()]
    assert len(warned) == (0 if native else 1)
    assert all("\n" not in r.getMessage() for r in warned)
    assert runtime.resolve_precision("fp32", cpu) == torch.float32


def test_map_processor_is_generic_over_families():
    assert depth_anything.FAMILY.processor is MapProcessor and midas.FAMILY.processor is MapProcessor


# ---------------------------------------------------------------- what a family declares


def _smallest_preset(family: str) -> ModelSpec:
    specs = registry.list_specs(include_test_only=True, family=family)
    return min(specs, key=lambda s: (not s.test_only, s.params_millions or 0.0))


def test_data_configs_hold_only_what_code_reads():
    """Fields no code read (resize kernels, normalisation order) are gone: processors own that."""
    fields = {f.name for f in dataclasses.fields(DataConfig)}
    assert not fields & {"input_kernel", "normalize_before_resize", "output_resized_as"}


@pytest.mark.parametrize("family", registry.list_families())
def test_every_parameter_belongs_to_a_declared_part(family):
    """`--train`/`--freeze` read the family's declared key prefixes; no parameter is left to a default part."""
    from sharpdepth.train.parts import part_of

    training = registry.get_family(family).training
    if training is None:
        pytest.skip(f"{family} declares no training")
    with torch.device("meta"):
        net = _smallest_preset(family).build()
    parts = {part_of(family, key) for key, _ in net.named_parameters()}
    assert parts == training.part_names
    assert "encoder" in parts and "decoder" in parts and "head" in parts


def test_an_unclaimed_parameter_is_an_error_not_a_decoder():
    from sharpdepth.train.parts import part_of

    assert part_of("midas_small", "pretrained.layer1.0.weight") == "encoder"
    assert part_of("video_depth_anything", "pretrained.blocks.0.attn.qkv.weight") == "encoder"
    assert part_of("video_depth_anything", "head.scratch.output_conv2.0.weight") == "head"
    with pytest.raises(OptionError, match="no declared part"):
        part_of("depth_anything", "somewhere_else.weight")


def test_output_fields_follow_the_family_and_the_preset():
    assert registry.get_spec("depth-pro").output_fields == ("canonical_inverse_depth", "fov_deg")
    assert registry.get_spec("depth-anything-v2-small").output_fields == ("disparity",)
    assert registry.get_spec("depth-anything-v2-metric-indoor-small").output_fields == ("depth",)
    for spec in registry.list_specs(include_test_only=True):
        assert spec.output_fields[0] in ("canonical_inverse_depth", "depth", "disparity", "relative_depth")
        assert ("fov_deg" in spec.output_fields) == spec.has_fov_head


def test_generic_code_never_branches_on_a_family():
    """Outside `models/`, no module names a family or tests a family's config type."""
    names = registry.list_families()
    configs = {type(s.config).__name__ for s in registry.list_specs(include_test_only=True)}
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "models" or rel.name in ("registry.py", "__init__.py"):
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{rel}: {n!r}" for n in names if f'"{n}"' in text or f"'{n}'" in text]
        offenders += [f"{rel}: {c}" for c in configs if c in text]
    assert not offenders, offenders
