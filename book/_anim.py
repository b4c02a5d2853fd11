"""Animations for the book's pages: a matplotlib animation rendered at build time into a player.

A page builds an ordinary `matplotlib.animation.FuncAnimation` from its own torch code and ends
the cell with `player(anim)`:

    from _anim import player                        # the pages run with book/ as the working directory
    anim = FuncAnimation(fig, draw, frames=range(12))
    player(anim, still=11, alt="...")               # displayed as the cell's output

Every frame is drawn once, cropped to what all frames show, reduced to a palette and embedded in
the page as a PNG data URI; `_static/layers-anim.js` turns the still frame into a player with its
controls, and a reader without JavaScript sees the still frame as a plain image. Nothing is
fetched at view time. (matplotlib's own `Animation.to_jshtml()` links its icons from a CDN.)

The notebook cache keys on a page's code, not on this module: after changing it, rebuild from a
cold cache (`rm -rf .jupyter_cache`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Sequence

import numpy as np
from matplotlib import animation
from matplotlib import pyplot as plt
from PIL import Image

#: pixels per inch of the frames: sharp enough for grids of numbers, small enough to ship
DPI = 90
#: colours kept per frame (a palette PNG is a third of the size of a full-colour one)
COLOURS = 96


class _FrameGrabber(animation.AbstractMovieWriter):
    """A matplotlib movie writer that keeps each frame as an RGB array instead of writing a file."""

    def __init__(self, fps: float):
        super().__init__(fps=fps)
        self.frames: list[np.ndarray] = []

    def setup(self, fig, outfile, dpi=None):
        super().setup(fig, outfile, dpi)
        fig.set_dpi(self.dpi)            # draw on the figure's own canvas, at the frames' resolution
        fig.set_facecolor("white")
        # Animation.save() asks for a redraw after each frame, and grab_frame() draws the frame
        # itself: without this, every frame would be drawn twice
        self._draw_idle = fig.canvas.draw_idle
        fig.canvas.draw_idle = lambda *args, **kwargs: None

    def grab_frame(self, **savefig_kwargs):
        self.fig.canvas.draw()
        rgba = np.asarray(self.fig.canvas.buffer_rgba())          # (H, W, 4)
        self.frames.append(rgba[..., :3].copy())                  # (H, W, 3)

    def finish(self):
        self.fig.canvas.draw_idle = self._draw_idle


def _crop(frames: list[np.ndarray], margin: int = 6) -> list[np.ndarray]:
    """Cut the white border that every frame shares, so all frames keep one size."""
    ink = np.zeros(frames[0].shape[:2], dtype=bool)
    for frame in frames:
        ink |= (frame < 250).any(axis=-1)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return frames
    top, bottom = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, ink.shape[0])
    left, right = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, ink.shape[1])
    return [frame[top:bottom, left:right] for frame in frames]


def _png(frame: np.ndarray) -> str:
    image = Image.fromarray(frame).quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")                     # optimize=True: 5% smaller, twice as slow
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Player:
    """An animation's frames, shown by a notebook or a book page as the player's HTML."""

    def __init__(self, frames: Sequence[str], delays: Sequence[int], still: int, alt: str, size: tuple[int, int]):
        self.frames, self.delays, self.still, self.alt, self.size = list(frames), list(delays), still, alt, size

    @property
    def nbytes(self) -> int:
        return len(self._repr_html_())

    def _repr_html_(self) -> str:
        width, height = self.size
        data = {"frames": [src if i != self.still else "" for i, src in enumerate(self.frames)],
                "delays": self.delays, "still": self.still}
        # "</" cannot end the script element early: the data URIs hold no "<", but be safe
        payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        return (f'<div class="layers-anim" tabindex="-1">'
                f'<img class="layers-anim-frame" src="{self.frames[self.still]}" alt="{html.escape(self.alt)}" '
                f'width="{width}" height="{height}">'
                f'<script type="application/json" class="layers-anim-data">{payload}</script></div>')


def player(anim: animation.Animation, *, still: int = -1, alt: str = "", dpi: int = DPI,
           hold: dict[int, int] | None = None) -> Player:
    """Render `anim` frame by frame into a `Player`, and close its figure.

    still: the frame a reader sees before pressing play, or without JavaScript (default: the
    last); alt: the image's alternative text; hold: extra milliseconds for some frames, e.g.
    `{-1: 1500}` to rest on the last frame before the animation starts again. The time between
    frames is the animation's `interval`.
    """
    interval = int(getattr(anim, "_interval", 500))
    grabber = _FrameGrabber(fps=1000 / interval)
    anim.save(os.devnull, writer=grabber, dpi=dpi)
    plt.close(grabber.fig)
    frames = _crop(grabber.frames)
    n = len(frames)
    delays = [interval] * n
    for i, extra in (hold or {}).items():
        delays[i % n] += extra
    height, width = frames[0].shape[:2]
    return Player([_png(f) for f in frames], delays, still % n, alt, (width, height))
