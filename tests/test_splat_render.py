"""The compiled CPU tile rasteriser against the PyTorch rasteriser (both gsplat's rules).

The fixture reference (tests/test_sharp.py) pins the CPU path to gsplat on one real scene; this
random scene is built to reach the branches that scene barely touches: many opaque overlapping
Gaussians (pixels that stop at T <= 1e-4), Gaussians behind the camera and inside the 1 cm near
plane, ones off screen on every side, and a picture size that is not a multiple of the tile.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpdepth.geometry import splat_render
from sharpdepth.geometry.gaussians import Gaussians

WIDTH, HEIGHT = 101, 75  # not multiples of 16: partial tiles on the right and bottom
K = np.array([[90.0, 0.0, 50.2], [0.0, 95.0, 37.1], [0.0, 0.0, 1.0]], np.float32)


def random_scene(n: int = 4000, seed: int = 3) -> Gaussians:
    rng = np.random.default_rng(seed)
    z = rng.uniform(-0.5, 4.0, n).astype(np.float32)
    z[:40] = rng.uniform(0.0, 0.01, 40)  # in front of the camera but inside the near plane
    half_w, half_h = 0.75 * z.clip(0.3), 0.55 * z.clip(0.3)  # beyond the picture on every side
    x = rng.uniform(-half_w, half_w) * 1.3
    y = rng.uniform(-half_h, half_h) * 1.3
    q = rng.normal(size=(n, 4)).astype(np.float32)
    return Gaussians(
        means=np.stack([x, y, z], 1).astype(np.float32),
        scales=rng.uniform(0.01, 0.12, (n, 3)).astype(np.float32),
        quaternions=q / np.linalg.norm(q, axis=1, keepdims=True),
        colors=rng.uniform(0.0, 1.0, (n, 3)).astype(np.float32),
        opacities=rng.uniform(0.2, 1.0, n).astype(np.float32),
    )


def torch_path(scene: splat_render.SplatScene, view: np.ndarray) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        p = splat_render.project(scene, torch.from_numpy(view), torch.from_numpy(K), WIDTH, HEIGHT)
        return (p.depths.shape[0], *splat_render.composite(p, WIDTH, HEIGHT))


@pytest.mark.parametrize(
    "view",
    [
        np.eye(4, dtype=np.float32),
        np.array([[0.98, 0, 0.199, -0.05], [0, 1, 0, 0.02], [-0.199, 0, 0.98, 0.1], [0, 0, 0, 1]], np.float32),
    ],
    ids=["source", "turned"],
)
def test_tiles_and_torch_rasterisers_agree(view: np.ndarray) -> None:
    g = random_scene()
    scene = splat_render.prepared_scene(g, "cpu")
    visible, rgb_t, depth_t, alpha_t = torch_path(scene, view)
    assert 0 < visible < len(g) - 40  # near-plane and off-screen Gaussians were culled
    with torch.inference_mode():
        rgb, depth, alpha = splat_render.rasterise_tiles(
            scene, torch.from_numpy(view), torch.from_numpy(K), WIDTH, HEIGHT
        )
    stopped = (alpha_t > 0.999).float().mean().item()
    assert stopped > 0.3  # many pixels end at T <= 1e-4: the early stop decides their colour
    for got, ref in ((rgb, rgb_t), (alpha, alpha_t), (depth, depth_t)):
        diff = (got.double() - ref.double()).abs()
        assert diff.mean().item() <= 1e-5
        assert (diff > 1e-4).float().mean().item() <= 1e-3


def test_render_scene_uses_the_tiles_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = splat_render.rasterise_tiles

    def counted(*args: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        calls.append(1)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(splat_render, "rasterise_tiles", counted)
    out = random_scene(300).render(np.eye(4), K, WIDTH, HEIGHT, device="cpu")
    assert calls == [1]
    assert out.color.shape == (HEIGHT, WIDTH, 3) and out.alpha.max() > 0.5


def test_tiles_follow_the_torch_thread_count() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert splat_render._threads() == 1
    finally:
        torch.set_num_threads(before)
