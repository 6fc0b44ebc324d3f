"""SVG snapshots of the main screens at 80x24 (pytest-textual-snapshot).

Update after an intended change with: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time

from dlcourse_tui.tui.app import DLCApp

SIZE = (80, 24)


def test_browser_snapshot(snap_compare) -> None:
    assert snap_compare(DLCApp(preload_torch=False), terminal_size=SIZE, press=["down"])


def test_picker_snapshot(snap_compare) -> None:
    async def open_picker(pilot) -> None:
        from textual.widgets import OptionList

        await pilot.press("down", "m")
        models = pilot.app.screen.query_one(OptionList)
        end = time.monotonic() + 20
        while "… params" in str(models.get_option_at_index(0).prompt) and time.monotonic() < end:
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(DLCApp(preload_torch=False), terminal_size=SIZE, run_before=open_picker)
