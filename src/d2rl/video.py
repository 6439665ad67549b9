"""Frames to files and screens: mp4 (H.264 through ffmpeg), animated GIF for TensorBoard, a window.

Frames are ``[H, W, 3]`` uint8 RGB throughout.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from d2rl.errors import D2RLError


def ffmpeg_exe() -> str | None:
    """The ffmpeg binary: imageio-ffmpeg's bundled one, else one on PATH."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width (yuv420p needs them) by repeating the last row/column."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


class VideoWriter:
    """Streams frames into an mp4: H.264 via ffmpeg when there is one, else OpenCV's MPEG-4."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, float(fps)
        self.frames = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._cv: Any = None
        self._shape: tuple[int, ...] | None = None
        path.parent.mkdir(parents=True, exist_ok=True)

    def _open(self, h: int, w: int) -> None:
        exe = ffmpeg_exe()
        if exe is not None:
            cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
            cmd += ["-s", f"{w}x{h}", "-r", f"{self.fps:g}", "-i", "-", "-an", "-vcodec", "libx264"]
            cmd += ["-pix_fmt", "yuv420p", "-crf", "20", str(self.path)]
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            return
        try:
            import cv2
        except ImportError as e:
            raise D2RLError(
                "writing mp4 needs ffmpeg or OpenCV: pip install 'd2rl[video]' (imageio-ffmpeg)"
            ) from e
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
        self._cv = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))

    def append(self, frame: np.ndarray) -> None:
        frame = even(np.ascontiguousarray(frame, dtype=np.uint8))
        if self._shape is None:
            self._shape = frame.shape
            self._open(frame.shape[0], frame.shape[1])
        elif frame.shape != self._shape:
            raise ValueError(f"frame shape {frame.shape} differs from the video's {self._shape}")
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.write(frame.tobytes())
        else:
            self._cv.write(frame[:, :, ::-1])  # OpenCV takes BGR
        self.frames += 1

    def close(self) -> Path:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            err = self._proc.stderr.read().decode() if self._proc.stderr else ""
            if self._proc.wait() != 0:
                raise RuntimeError(f"ffmpeg failed writing {self.path}: {err.strip()[:300]}")
        elif self._cv is not None:
            self._cv.release()
        return self.path


def network_view(obs: np.ndarray, frame_stack: int, min_size: int = 256) -> np.ndarray:
    """One pixel observation ``[C, H, W]`` as the network sees it -> ``[H', W', 3]`` RGB: the newest
    frame of a stack, grey repeated to RGB, scaled up by an integer factor to at least ``min_size``."""
    if obs.ndim != 3:
        raise D2RLError(f"video.view=network needs pixel observations [C, H, W], this env gives {obs.shape}")
    c = obs.shape[0] // max(1, frame_stack)
    img = np.asarray(obs[-c:])
    img = np.repeat(img, 3, axis=0) if c == 1 else img[:3]
    if img.dtype != np.uint8:  # e.g. normalised floats
        lo, hi = float(img.min()), float(img.max())
        img = ((img - lo) / max(hi - lo, 1e-8) * 255).astype(np.uint8)
    img = img.transpose(1, 2, 0)
    k = max(1, -(-min_size // max(img.shape[:2])))
    return np.repeat(np.repeat(img, k, axis=0), k, axis=1)


def gif_bytes(frames: list[np.ndarray], fps: float) -> bytes:
    """An animated GIF (what TensorBoard's image dashboard plays)."""
    from PIL import Image

    images = [Image.fromarray(even(f)) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
    )
    return buf.getvalue()


def add_tensorboard_video(writer: Any, tag: str, frames: list[np.ndarray], fps: float, step: int) -> None:
    """Adds ``frames`` as an animated image summary (``SummaryWriter.add_video`` needs moviepy<2)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    h, w = even(frames[0]).shape[:2]
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def display_available() -> bool:
    """Whether a window can open: an X11/Wayland display on Linux; assumed on macOS and Windows."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Window:
    """Shows frames in a pygame window at ``fps`` (the ``render=true`` test mode)."""

    def __init__(self, title: str, fps: float) -> None:
        try:
            import pygame
        except ImportError as e:
            raise D2RLError("render=true needs pygame: pip install 'd2rl[video]'") from e
        self.pygame, self.fps, self.title = pygame, fps, title
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray) -> bool:
        """Draws ``frame``; False once the user closed the window."""
        pg = self.pygame
        h, w = frame.shape[:2]
        screen = pg.display.get_surface() if pg.display.get_init() else None
        if screen is None or screen.get_size() != (w, h):  # (re)open: an env's close() quits pygame
            pg.display.init()  # the display only (no audio)
            pg.display.set_caption(self.title)
            screen = pg.display.set_mode((w, h))
        for event in pg.event.get():
            if event.type == pg.QUIT:
                return False
        screen.blit(pg.surfarray.make_surface(frame.transpose(1, 0, 2)), (0, 0))
        pg.display.flip()
        self.clock.tick(self.fps)
        return True

    def close(self) -> None:
        self.pygame.quit()
