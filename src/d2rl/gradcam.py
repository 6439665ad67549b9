"""Grad-CAM saliency for pixel agents (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from
Deep Networks via Gradient-based Localization").

For a conv layer with activations ``A [K, h, w]`` and the score ``y`` of the action the agent chose
(``Policy.action_scores``: a Q-value, a pre-softmax logit, or the mean action of a Box policy), the
map is ``relu(sum_k alpha_k A_k)`` with ``alpha_k = mean_ij dy/dA_kij`` (paper eq. 1-2), upsampled to
the frame and normalised to [0, 1]. Several layers: the mean of their normalised maps.
Deviation from the paper: for a Box action the score is the sum of the mean action's components
(or one component, ``action_index``), since there is no class score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from d2rl.core import Policy
from d2rl.errors import D2RLError
from d2rl.evaluation import as_obs_tensor


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The model's 2-d conv layers by module name, in definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def pick_layers(policy: Policy, names: Sequence[str], what: str = "this agent") -> dict[str, nn.Conv2d]:
    """``names`` (empty: the last conv layer) -> layers; a one-line refusal without conv layers."""
    convs = conv_layers(policy)
    if not convs:
        raise D2RLError(
            f"Grad-CAM needs a conv network, but {what} has no Conv2d layer (an MLP on vector observations "
            "has no spatial map); train a pixel agent, e.g. network=nature_cnn or network=impala_resnet"
        )
    if not names:
        last = list(convs)[-1]
        return {last: convs[last]}
    unknown = [n for n in names if n not in convs]
    if unknown:
        raise D2RLError(
            f"gradcam.layers: no conv layer named {unknown}; this agent's are: {', '.join(convs)}"
        )
    return {n: convs[n] for n in names}


class GradCAM:
    """Grad-CAM maps of ``layers`` for the action a policy chose."""

    def __init__(self, policy: Policy, layers: dict[str, nn.Conv2d], action_index: int | None = None) -> None:
        self.policy, self.layers, self.action_index = policy, layers, action_index
        self._acts: dict[str, torch.Tensor] = {}
        self._hooks = [layer.register_forward_hook(self._keep(name)) for name, layer in layers.items()]

    def remove(self) -> None:
        """Detach the hooks from the policy's layers."""
        for h in self._hooks:
            h.remove()

    def _keep(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if torch.is_grad_enabled():  # not while the policy acts under no_grad
                self._acts[name] = output

        return hook

    def __call__(
        self, obs: np.ndarray, action: Any, state: Any = None, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """One observation ``[*obs]`` and the action taken -> the map ``[H, W]`` in [0, 1]
        (``size``, default the observation's spatial size)."""
        self._acts.clear()
        x = as_obs_tensor(np.asarray(obs)[None])
        with torch.enable_grad():
            try:
                scores = self.policy.action_scores(x, state)  # [1, A]
            except NotImplementedError as e:
                raise D2RLError(f"Grad-CAM cannot explain this policy: {e}") from e
            score = self._target(scores, action)
            acts = [self._acts[n] for n in self.layers]
            grads = torch.autograd.grad(score, acts, allow_unused=True)
        size = size or (int(x.shape[-2]), int(x.shape[-1]))
        maps = []
        for a, g in zip(acts, grads, strict=True):
            if g is None:  # the score does not depend on this layer
                maps.append(torch.zeros(size))
                continue
            weights = g[0].mean(dim=(1, 2))  # alpha_k [K]
            cam = torch.relu((weights[:, None, None] * a[0].detach()).sum(0))  # [h, w]
            cam = F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
            top = float(cam.max())
            maps.append(cam / top if top > 0 else cam)
        return torch.stack(maps).mean(0).detach().numpy()

    def _target(self, scores: torch.Tensor, action: Any) -> torch.Tensor:
        a = torch.as_tensor(np.asarray(action))
        if a.dtype in (torch.int32, torch.int64) and a.ndim == 0:  # discrete: the chosen action's score
            return scores[0, int(a)]
        if self.action_index is not None:
            return scores[0, int(self.action_index)]
        return scores[0].sum()


def colorize(cam: np.ndarray) -> np.ndarray:
    """``[H, W]`` in [0, 1] -> ``[H, W, 3]`` uint8 with the 'jet' colour map."""
    from matplotlib import colormaps

    return (colormaps["jet"](cam)[..., :3] * 255).astype(np.uint8)


def overlay(frame: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured map onto ``frame [H, W, 3]``; the map's weight grows with its value."""
    w = (alpha * cam)[..., None]
    return (frame.astype(np.float32) * (1 - w) + colorize(cam).astype(np.float32) * w).astype(np.uint8)


@dataclass
class Thinned:
    """Keeps about ``2n`` evenly spaced items of a stream of unknown length; ``pick()`` gives ``n``."""

    n: int
    stride: int = 1
    count: int = 0

    def __post_init__(self) -> None:
        self.items: list[tuple[int, np.ndarray]] = []

    def add(self, item: np.ndarray) -> None:
        if self.count % self.stride == 0:
            self.items.append((self.count, item))
            if len(self.items) > 2 * self.n:
                self.items = self.items[::2]
                self.stride *= 2
        self.count += 1

    def pick(self) -> list[tuple[int, np.ndarray]]:
        if len(self.items) <= self.n:
            return self.items
        idx = np.linspace(0, len(self.items) - 1, self.n).round().astype(int)
        return [self.items[i] for i in idx]


def record_gradcam(
    policy: Policy,
    env_cfg: Any,
    out_dir: Path,
    seed: int,
    layers: Sequence[str] = (),
    deterministic: bool = True,
    view: str = "render",
    pngs: int = 4,
    alpha: float = 0.5,
    action_index: int | None = None,
) -> tuple[Path, list[Path]]:
    """Play one evaluation episode and write ``out_dir/gradcam.mp4`` (every step's frame with the
    Grad-CAM map overlaid) and ``pngs`` evenly spaced frames as ``gradcam_step<k>.png``."""
    from PIL import Image

    from d2rl.evaluation import play_episode, render_fps
    from d2rl.video import VideoWriter

    cam = GradCAM(policy, pick_layers(policy, list(layers)), action_index)
    writer = VideoWriter(Path(out_dir) / "gradcam.mp4", render_fps(env_cfg))
    kept = Thinned(pngs)

    def visit(frame: np.ndarray | None, obs: np.ndarray, state: Any, action: np.ndarray) -> None:
        assert frame is not None
        picture = overlay(frame, cam(obs, action, state, size=(frame.shape[0], frame.shape[1])), alpha)
        writer.append(picture)
        kept.add(picture)

    try:
        play_episode(policy, env_cfg, seed, deterministic, view=view, visit=visit)
    finally:
        cam.remove()
        if writer.frames:
            writer.close()
    png_paths = []
    for step, picture in kept.pick():
        path = Path(out_dir) / f"gradcam_step{step:05d}.png"
        Image.fromarray(picture).save(path)
        png_paths.append(path)
    return writer.path, png_paths
