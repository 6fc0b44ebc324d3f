"""A lesson's text: Markdown laid out once per lesson and width, then shown as ready lines.

Textual's Markdown widget makes a widget of every block (a lesson has ~130); each move of
the lesson tree re-arranged them and sent each a Show and a Resize: 35 ms of the UI thread
per key press here, and a first layout of 0.1-0.8 s on a busy 2-core machine. This widget
is one scroll view: the text is parsed (markdown-it) and wrapped (Rich) into strips the
first time a lesson is shown at a width, kept, and shown again at no cost. It draws what the
lessons use as Textual's Markdown did: headings, paragraphs with bold, italic, code and
links, bullet and numbered lists (nested), code blocks (long lines folded, not cut),
tables, quotes and rules, in the app theme's colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.color import Color
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

BULLETS = ("• ", "▪ ", "‣ ", "⭑ ", "◦ ")  # by depth, as Textual's Markdown
CACHE_MAX = 48  # (lesson, width, theme) layouts kept


@dataclass(frozen=True)
class TextStyles:
    """The styles of a lesson's text (from the app theme; plain ones without colour)."""

    text: Style = Style()
    h1: Style = Style(bold=True)
    h2: Style = Style(underline=True)
    h3: Style = Style(bold=True)
    h4: Style = Style(bold=True, underline=True)
    bullet: Style = Style()
    code: Style = Style(bold=True)  # inline code
    fence: Style = Style()  # a code block, its background included
    rule: Style = Style()
    table_header: Style = Style(bold=True)
    table_border: Style = Style()
    quote: Style = Style()
    link: Style = Style(underline=True)

    @classmethod
    def from_theme(cls, variables: dict[str, str], background: Color) -> "TextStyles":
        """Styles from the app's CSS variables, colours with alpha blended over `background`."""

        def color(name: str, default: str = "#e0e0e0", alpha: float | None = None) -> str:
            try:
                c = Color.parse(variables.get(name, default))
            except Exception:  # noqa: BLE001 - "auto 87%" and other forms: the default
                c = Color.parse(default)
            if alpha is not None:
                c = c.with_alpha(alpha)
            return (background + c).hex if c.a < 1 else c.hex

        def heading(level: int, default_style: str) -> Style:
            style = Style.parse(variables.get(f"markdown-h{level}-text-style", default_style).replace("none", ""))
            return style + Style(color=color(f"markdown-h{level}-color", variables.get("primary", "#0178d4")))

        fg = color("foreground")
        return cls(
            text=Style(color=fg),
            h1=heading(1, "bold"), h2=heading(2, "underline"), h3=heading(3, "bold"), h4=heading(4, "bold underline"),
            bullet=Style(color=color("text-primary", variables.get("primary", "#57a5e2"))),
            code=Style(color=color("text-warning", "#ffc473", 0.95), bgcolor=color("warning", "#fea62b", 0.10)),
            fence=Style(color="#d2d2d2", bgcolor=color("fence", "#000000", 0.10)),
            rule=Style(color=color("secondary", "#004578")),
            table_header=Style(color=color("primary", "#0178d4"), bold=True),
            table_border=Style(color=color("foreground", "#e0e0e0", 0.20)),
            quote=Style(bgcolor=color("boost", "#ffffff", 0.04)),
            link=Style(underline=True, color=color("text-primary", "#57a5e2")),
        )


_CONSOLE: Console | None = None


def _console() -> Console:
    global _CONSOLE
    if _CONSOLE is None:
        _CONSOLE = Console(width=200, color_system="truecolor", force_terminal=True, legacy_windows=False,
                           markup=False, emoji=False, highlight=False, no_color=False)
    return _CONSOLE


def _inline(node: Any, st: TextStyles, base: Style) -> Text:
    """The text of an inline node (markdown-it), styled; soft breaks become spaces."""
    out = Text(style=base, end="")

    def walk(n: Any, style: Style) -> None:
        for c in n.children:
            t = c.type
            if t == "text":
                out.append(c.content, style)
            elif t == "softbreak":
                out.append(" ", style)
            elif t == "hardbreak":
                out.append("\n", style)
            elif t == "code_inline":
                out.append(c.content, style + st.code)
            elif t == "strong":
                walk(c, style + Style(bold=True))
            elif t == "em":
                walk(c, style + Style(italic=True))
            elif t == "s":
                walk(c, style + Style(strike=True))
            elif t == "link":
                walk(c, style + st.link)
            elif t == "image":
                out.append(c.content or str(c.attrs.get("alt", "")) or "image", style + Style(italic=True))
            elif t in ("html_inline", "html_block"):
                out.append(c.content, style)
            elif c.children:
                walk(c, style)
            elif c.content:
                out.append(c.content, style)

    walk(node, base)
    return out


def _wrap(text: Text, width: int, *, justify: str = "left") -> list[list[Segment]]:
    text.justify = justify  # type: ignore[assignment]
    con = _console()
    return con.render_lines(text, con.options.update(width=max(1, width), no_wrap=False, overflow="fold"), pad=False)


@dataclass
class _Block:
    lines: list[list[Segment]]
    top: int = 0  # margins, collapsed between neighbours as CSS does
    bottom: int = 0


def _blocks(nodes: list[Any], width: int, st: TextStyles, depth: int, top_level: bool) -> list[_Block]:
    out: list[_Block] = []
    for node in nodes:
        t = node.type
        if t == "heading":
            level = int(node.tag[1:]) if node.tag[1:].isdigit() else 2
            style = {1: st.h1, 2: st.h2, 3: st.h3}.get(level, st.h4)
            text = _inline(node.children[0], st, st.text + style) if node.children else Text()
            lines = _wrap(text, width, justify="center" if level == 1 else "left")
            out.append(_Block(lines, *((2, 1) if level <= 2 else (1, 1))))
        elif t == "paragraph":
            text = _inline(node.children[0], st, st.text) if node.children else Text()
            out.append(_Block(_wrap(text, width), 0, 1 if top_level else 0))
        elif t in ("bullet_list", "ordered_list"):
            out.append(_Block(_list(node, width, st, depth), 0, 1 if depth == 0 else 0))
        elif t in ("fence", "code_block"):
            out.append(_Block(_fence(node.content, width, st), 1, 1))
        elif t == "table":
            out.append(_Block(_table(node, width, st), 0, 1))
        elif t == "blockquote":
            inner = _layout(node.children, max(1, width - 4), st, depth, top_level=True)
            bar = Segment("▌ ", st.quote)
            lines = [[bar, *line, Segment(" " * max(0, width - 2 - _len(line)), st.quote)] for line in inner]
            out.append(_Block([[Segment(" " * width, st.quote)], *lines, [Segment(" " * width, st.quote)]], 1, 1))
        elif t == "hr":
            out.append(_Block([[Segment("─" * width, st.rule)]], 1, 1))
        elif t == "html_block":
            out.append(_Block(_wrap(Text(node.content.rstrip("\n"), style=st.text), width), 0, 1))
    return out


def _len(line: list[Segment]) -> int:
    return sum(s.cell_length for s in line)


def _layout(nodes: list[Any], width: int, st: TextStyles, depth: int = 0, *, top_level: bool = True) -> list[list[Segment]]:
    """Blocks one below the other, the larger of two neighbouring margins between them."""
    lines: list[list[Segment]] = []
    gap = None
    for block in _blocks(nodes, width, st, depth, top_level):
        n = block.top if gap is None else max(gap, block.top)
        lines.extend([] for _ in range(n))
        lines.extend(block.lines)
        gap = block.bottom
    return lines


def _list(node: Any, width: int, st: TextStyles, depth: int) -> list[list[Segment]]:
    items = [c for c in node.children if c.type == "list_item"]
    if node.type == "ordered_list":
        start = int(node.attrs.get("start", 1) or 1)
        size = max(len(f"{n}. ") for n in range(start, start + len(items)))
        symbols = [f"{n}. ".rjust(size + 1) for n in range(start, start + len(items))]
    else:
        symbols = [BULLETS[depth % len(BULLETS)]] * len(items)
    lines: list[list[Segment]] = []
    for symbol, item in zip(symbols, items):
        inner_w = max(1, width - len(symbol) - 1)  # a list item keeps one cell free at the right
        body = _layout(item.children, inner_w, st, depth + 1, top_level=False) or [[]]
        pad = Segment(" " * len(symbol))
        for i, line in enumerate(body):
            lines.append([Segment(symbol, st.bullet) if i == 0 else pad, *line])
    return lines


def _fence(code: str, width: int, st: TextStyles) -> list[list[Segment]]:
    """A code block: padded 1 line and 2 columns on its own background; a long line is
    folded onto the next (a terminal this narrow would otherwise hide its end)."""
    inner = max(1, width - 4)
    blank = [Segment(" " * width, st.fence)]
    lines = [blank]
    for raw in code.rstrip("\n").split("\n"):
        for chunk in fold(raw.expandtabs(4), inner):
            lines.append([Segment("  " + chunk + " " * (width - 2 - len(chunk)), st.fence)])
    lines.append(blank)
    return lines


def fold(line: str, width: int) -> list[str]:
    """A code line cut into pieces of at most `width` cells, at a space where one is near the
    end; the pieces after the first are indented two more than the line."""
    if len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip(" "))
    indent = " " * min(lead + 2, width // 2)
    pieces, rest, first = [], line, True
    while rest:
        room = width if first else width - len(indent)
        if len(rest) <= room:
            pieces.append(rest if first else indent + rest)
            break
        cut = rest.rfind(" ", 0, room + 1)
        if cut <= room // 2:  # no space near the end: cut the word
            cut = room
        piece, rest = rest[:cut].rstrip(" "), rest[cut:].lstrip(" ")
        pieces.append(piece if first else indent + piece)
        first = False
    return pieces


def _table(node: Any, width: int, st: TextStyles) -> list[list[Segment]]:
    table = Table(box=box.SQUARE, border_style=st.table_border, header_style=st.table_header, show_lines=False,
                  pad_edge=True, expand=False, style=st.text)
    head = next((c for c in node.children if c.type == "thead"), None)
    body = next((c for c in node.children if c.type == "tbody"), None)
    rows = [tr for part in (head, body) if part is not None for tr in part.children if tr.type == "tr"]
    if not rows:
        return []
    for cell in rows[0].children:
        align = str(cell.attrs.get("style", ""))
        justify = "right" if "right" in align else "center" if "center" in align else "left"
        table.add_column(_inline(cell.children[0], st, st.table_header) if cell.children else "", justify=justify)
    for tr in rows[1:] if head is not None else rows:
        table.add_row(*[_inline(c.children[0], st, st.text) if c.children else Text() for c in tr.children])
    con = _console()
    return con.render_lines(table, con.options.update(width=max(4, width)), pad=False)


_PARSER = None


def render_markdown(markup: str, width: int, styles: TextStyles) -> list[list[Segment]]:
    """`markup` laid out `width` cells wide: one list of segments per line."""
    global _PARSER
    from markdown_it import MarkdownIt
    from markdown_it.tree import SyntaxTreeNode

    if _PARSER is None:
        _PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    root = SyntaxTreeNode(_PARSER.parse(markup))
    return _layout(root.children, max(8, width), styles)


class LessonText(ScrollView, can_focus=True):
    """One lesson's text at a time, each laid out once per width and theme and kept."""

    DEFAULT_CSS = """
    LessonText { height: 1fr; padding: 0 3; overflow-x: hidden; overflow-y: auto; scrollbar-gutter: stable; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key: str | None = None  # which text is shown
        self.markup = ""
        self.layouts = 0  # how many times a text was laid out (tests and benchmarks read it)
        self._cache: dict[tuple, list[Strip]] = {}
        self._strips: list[Strip] = []
        self._shown: tuple | None = None  # cache key of the strips shown
        self._painted = False  # a first frame was laid out (the text waits for it)

    def show(self, key: str, markup: str) -> None:
        """Show text `markup` (known as `key`) from its top."""
        changed = key != self.key
        self.key, self.markup = key, markup
        self._update()
        if changed:
            self.scroll_home(animate=False)

    def is_laid_out(self, key: str) -> bool:
        """Whether the text `key` is laid out at the current width and theme (showing it is free)."""
        return (key, self.text_width, self._theme_key()) in self._cache

    @property
    def text_width(self) -> int:
        """Cells a line has: the content's width less the scrollbar's gutter, which is kept
        whether the scrollbar shows or not (it sits inside the content region, over its last
        two cells, and appears only once a long text is laid out)."""
        return self.scrollable_content_region.width

    def _theme_key(self) -> tuple:
        return (self.app.theme, self.rich_style, bool(self.app.no_color))

    def _styles(self) -> TextStyles:
        if self.app.no_color:
            return TextStyles()
        return TextStyles.from_theme(self.app.get_css_variables(), self.background_colors[1])

    def _update(self) -> None:
        width = self.text_width
        if self.key is None or width <= 0:
            return
        ck = (self.key, width, self._theme_key())
        if ck == self._shown:
            return
        strips = self._cache.get(ck)
        if strips is None:
            base = self.rich_style
            strips = [Strip(line).apply_style(base).crop_extend(0, width, base)
                      for line in render_markdown(self.markup, width, self._styles())]
            self.layouts += 1
            while len(self._cache) >= CACHE_MAX:
                self._cache.pop(next(iter(self._cache)))
            self._cache[ck] = strips
        self._strips, self._shown = strips, ck
        self.virtual_size = Size(width, len(strips))
        self.refresh()

    def on_resize(self) -> None:
        if not self._painted:  # the first frame goes out without the text: lay it out just after
            self._painted = True
            self.call_after_refresh(self._update)
        else:
            self._update()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted:
            self.call_later(self._update)  # a new theme: lay out again in its colours

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.text_width
        i = scroll_y + y
        if 0 <= i < len(self._strips):
            strip = self._strips[i]
            return strip if strip.cell_length == width and not scroll_x else strip.crop_extend(scroll_x, scroll_x + width,
                                                                                                 self.rich_style)
        return Strip.blank(width, self.rich_style)
