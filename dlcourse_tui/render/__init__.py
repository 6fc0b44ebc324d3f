"""Images and charts to terminal cells, shared by the TUI and the headless CLI.

Everything here works on numpy ``uint8`` pixels ((H, W, 3) RGB or (H, W)
grayscale) and never imports torch: torch-side code hands over ready-made
arrays (``tensor.cpu().numpy()``), this package turns them into pictures.

- ``images``: pixel arithmetic (tiles, colour maps, decision boundaries, PNGs)
- ``halfblock``: pixels to Rich text with "▀" half blocks (or an ASCII ramp)
- ``chart``: line charts for the CLI, downsampling, sparklines
- ``plot``: the line chart itself (numpy braille, axes, legend), for the app and the CLI

Names are re-exported lazily, so ``import dlcourse_tui.render`` costs nothing.
``render.halfblock`` is the module; the function is
``from dlcourse_tui.render.halfblock import halfblock``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "to_rgb": "images",
    "chw_to_hwc": "images",
    "tile": "images",
    "upscale": "images",
    "colormap": "images",
    "normalize_to_uint8": "images",
    "save_png": "images",
    "boundary_picture": "images",
    "data_to_grid": "images",
    "HalfBlockImage": "halfblock",
    "line_chart": "chart",
    "downsample": "chart",
    "sparkline": "chart",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
