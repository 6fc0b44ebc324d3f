"""The lesson text of the browser: Markdown laid out once per lesson and width (no app needed
for the layout itself; Pilot tests for the widget)."""

from __future__ import annotations

import contextlib
import re

from rich.style import Style

from dlcourse_tui.tui.widgets.lesson_text import TextStyles, fold, render_markdown

DOC = """# Title

A paragraph with **bold**, *italic* and `code`,
soft-wrapped in the source.

## Section

- first item that is long enough to wrap onto a second line at this width
  - nested
- second

1. one
2. two

```
short
a_very_long_code_line = with_many_words + that_do_not_fit + in_the_width_given
```

| arm | what |
|-----|------|
| base | nothing |
"""

STYLES = TextStyles(h1=Style(bold=True, color="blue"), h2=Style(underline=True, color="blue"), code=Style(color="yellow"))


def lines_of(width: int = 40) -> list[str]:
    return ["".join(seg.text for seg in line).rstrip() for line in render_markdown(DOC, width, STYLES)]


def test_blocks_are_laid_out_with_textual_markdown_margins() -> None:
    lines = lines_of()
    assert lines[0] == lines[1] == ""  # h1: two lines above
    assert lines[2].strip() == "Title" and lines[2].startswith(" ")  # centred
    i = lines.index("A paragraph with bold, italic and code,")
    assert lines[i + 1] == "soft-wrapped in the source."  # soft break: a space, then wrapped at the width
    j = next(k for k, line in enumerate(lines) if line.strip() == "Section")
    assert lines[j - 1] == lines[j - 2] == "" and lines[j + 1] == ""  # h2: 2 above, 1 below (collapsed)
    assert all(len(line) <= 40 for line in lines)


def test_lists_bullets_numbers_and_nesting() -> None:
    lines = lines_of()
    first = next(k for k, line in enumerate(lines) if "first item" in line)
    assert lines[first].startswith("• ") and lines[first + 1].startswith("  ")  # hanging indent
    nested = next(line for line in lines if "nested" in line)
    assert nested.lstrip().startswith("▪ ") and nested.index("▪") == 2  # second level: its own bullet, indented
    assert any(line.startswith(" 1. one") for line in lines) and any(line.startswith(" 2. two") for line in lines)


def test_code_blocks_keep_every_character_folding_long_lines() -> None:
    lines = lines_of(40)
    body = [line for line in lines if line.startswith("  ") and line.strip() and "│" not in line and "•" not in line]
    joined = " ".join(line.strip() for line in body)
    for word in ("short", "a_very_long_code_line", "with_many_words", "that_do_not_fit", "in_the_width_given"):
        assert word in joined
    assert fold("    x = " + "word " * 20, 30)[1].startswith("      ")  # continuation indented two more
    assert all(len(piece) <= 30 for piece in fold("y" * 100, 30))


def test_tables_and_inline_styles() -> None:
    lines = lines_of()
    assert any("arm" in line and "what" in line for line in lines)
    assert any("base" in line and "nothing" in line for line in lines)
    segs = [seg for line in render_markdown(DOC, 40, STYLES) for seg in line]
    code = [seg for seg in segs if seg.text == "code"]
    assert code and code[0].style is not None and code[0].style.color is not None  # inline code styled
    bold = [seg for seg in segs if seg.text == "bold"]
    assert bold and bold[0].style.bold


@contextlib.asynccontextmanager
async def browser_text(lesson_id: str = ""):
    """The app at 80×24 on its lesson browser, lesson `lesson_id` (default: the first) laid
    out: (pilot, screen, its LessonText)."""
    from dlcourse_tui.tui.app import DLCApp
    from dlcourse_tui.tui.screens.browser import BrowserScreen
    from dlcourse_tui.tui.widgets.lesson_text import LessonText

    app = DLCApp(preload_torch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        text = screen.query_one(LessonText)
        if lesson_id:
            screen.select_lesson(lesson_id)
        while not text.is_laid_out(screen.lesson.id):
            await pilot.pause(0.02)
        yield pilot, screen, text


async def test_the_widget_lays_a_lesson_out_once_and_shows_it_again_for_free() -> None:
    async with browser_text() as (pilot, screen, text):
        first = screen.lesson
        await pilot.press("down")
        second = screen.lesson
        assert second is not first and text.key == second.id  # shown at once, no waiting for the cursor to rest
        laid = text.layouts
        await pilot.press("up", "down", "up")
        assert screen.lesson is first and text.key == first.id
        assert text.layouts == laid  # both were laid out already
        assert any("".join(s.text for s in text.render_line(y)).strip() for y in range(8))  # it shows text


async def test_no_word_is_cut_at_the_right_edge_once_the_scrollbar_shows() -> None:
    """The text is laid out at the width left beside the scrollbar: at 80×24 the unlearning
    lesson once showed "Retraining fr" (its "om" under the scrollbar that appeared after the
    first layout)."""
    async with browser_text("unlearning") as (pilot, screen, text):  # a long lesson
        lesson = screen.lesson
        await pilot.pause(0.1)
        words = set(re.findall(r"[A-Za-z]+", lesson.reading))
        region = text.content_region  # what the screen shows there, scrollbar included
        screen_rows = [strip.crop(region.x, region.right).text for strip in screen._compositor.render_strips()]
        shown = [w for row in screen_rows[region.y:region.bottom] for w in re.findall(r"[A-Za-z]+", row)]
        assert len(shown) > 30
        assert [w for w in shown if w not in words] == []
