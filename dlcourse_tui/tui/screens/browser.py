"""The lesson browser: chapters and lessons as a tree beside the lesson text and a
summary of its experiment. Reads lesson files only (no torch).

A move of the tree's cursor shows the lesson at once: its summary replaces the old one
without a layout of the screen when it takes as many lines, and its text is laid out once
per width (widgets/lesson_text.py) and kept. The first frame shows the tree and the summary;
the text follows on the next (laying it out, markdown-it's import included, is not on the
way to the first paint)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, Static, Tree

from dlcourse_tui.lessons import Lesson, broken_lessons, load_lessons
from dlcourse_tui.tui.widgets.keybar import KeyBar
from dlcourse_tui.tui.widgets.lesson_text import LessonText
from dlcourse_tui.tui.widgets.walkthrough import WalkthroughPane

CHAPTERS = {
    1: "Foundations",
    2: "Convolutional nets",
    3: "Generative models",
    4: "Sequences & attention",
    5: "Vision & language",
}


def experiment_summary(lesson: Lesson) -> str:
    """A few lines: data, default model, models offered, target and variants."""
    exp = lesson.experiment
    train = exp.get("train", {})
    data = exp.get("data", {})
    n = f" ({data['n_train']} train / {data.get('n_val', '?')} val)" if "n_train" in data else ""
    lines = [
        f"[b]data[/]    {lesson.default_data}{n}",
        f"[b]model[/]   {lesson.default_model}" + (f"  (also: {', '.join(m for m in lesson.models if m != lesson.default_model)})"
                                                 if len(lesson.models) > 1 else ""),
        f"[b]train[/]   {train.get('epochs', '?')} epochs, batch {train.get('batch_size', '?')}, "
        f"lr {train.get('lr', '?')}, {train.get('optimizer', 'sgd')}",
    ]
    t = lesson.target
    if t is not None:
        goal = f"{'≥' if t.mode == 'max' else '≤'} {t.value:g}" if t.value is not None else "(reported)"
        lines.append(f"[b]target[/]  {t.metric} {goal}")
    if lesson.variants:
        lines.append(f"[b]variants[/] {', '.join(lesson.variants)}")
    return "\n".join(lines)


class Summary(Static):
    """The experiment summary under the text: a new lesson's summary repaints only this
    widget, unless it needs another number of lines (then a layout of the screen, as
    Static.update always did)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._height = (-1, -1)  # (width, lines) of what is shown

    def show(self, content) -> None:  # noqa: ANN001 - a textual Content (or markup)
        from textual.content import Content

        if isinstance(content, str):
            content = Content.from_markup(content)
        width = self.content_size.width
        height = (width, content.get_height(self.styles, width)) if width > 0 else (-1, -1)
        self.update(content, layout=height != self._height or width <= 0)
        self._height = height

class LessonTree(Tree):
    """The course tree; a move of its cursor shows the lesson in the same refresh (Tree posts
    NodeHighlighted, handled after the frame with the moved cursor has gone out: two frames
    for every key, the second the one the learner waits for)."""

    def watch_cursor_line(self, previous_line: int, line: int) -> None:
        super().watch_cursor_line(previous_line, line)
        node = self.cursor_node
        if previous_line != line and node is not None and isinstance(node.data, Lesson) and self.is_mounted:
            screen = self.screen
            if isinstance(screen, BrowserScreen):
                screen.show(node.data)


class BrowserScreen(Screen):
    """Pick a lesson, read it, start its experiment; w shows its walkthrough beside the text."""

    walk_name = "browser"  # as walkthrough conditions name this screen

    BINDINGS = [
        Binding("r", "run", "Run"),
        Binding("m", "models", "Models & knobs"),
        Binding("w", "app.walkthrough", "Walkthrough"),
        Binding("d", "dashboard", "Dashboard", show=False),
        Binding("tab", "focus_next", "Focus", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.lessons = load_lessons()
        self.lesson: Lesson | None = self.lessons[0] if self.lessons else None
        self._shown: Lesson | None = None  # the lesson whose summary and text are on screen
        self._summaries: dict[str, object] = {}  # lesson id -> its summary, parsed once

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            tree: Tree[Lesson | None] = LessonTree("Course", id="lesson-tree")
            tree.show_root = False
            tree.guide_depth = 2
            chapters: dict[int, object] = {}
            for lesson in self.lessons:
                if lesson.chapter not in chapters:
                    name = CHAPTERS.get(lesson.chapter, "")
                    chapters[lesson.chapter] = tree.root.add(f"{lesson.chapter} {name}".strip(), data=None, expand=True)
                chapters[lesson.chapter].add_leaf(lesson.title, data=lesson)
            yield tree
            with Vertical(id="lesson-pane"):
                yield LessonText(id="lesson-scroll")
                yield Summary(id="experiment", markup=True)
            yield WalkthroughPane(id="walk-pane")
        yield KeyBar()

    @property
    def walk_lesson(self) -> Lesson | None:
        return self.lesson

    def on_mount(self) -> None:
        self.title = "dlc"
        self.sub_title = "lessons"
        tree = self.query_one(Tree)
        tree.focus()
        # put the cursor on the first lesson (line 0 is the chapter)
        tree.cursor_line = 1 if self.lessons else 0
        self.show(self.lesson, at_once=True)
        for bad in broken_lessons():
            self.notify(bad.message, title="broken lesson skipped", severity="warning", timeout=20, markup=False)

    def select_lesson(self, lesson_id: str) -> None:
        """Move the tree cursor to lesson `lesson_id` (which shows it)."""
        tree = self.query_one(Tree)
        for line in range(tree.last_line + 1):
            node = tree.get_node_at_line(line)
            if node is not None and isinstance(node.data, Lesson) and node.data.id == lesson_id:
                tree.cursor_line = line
                self.show(node.data, at_once=True)
                tree.focus()
                return

    def show(self, lesson: Lesson | None, *, at_once: bool = False) -> None:  # noqa: ARG002 - always at once now
        """The lesson's summary and its text (laid out the first time, then kept)."""
        if lesson is None or lesson is self._shown:
            return
        self.lesson = self._shown = lesson
        summary = self._summaries.get(lesson.id)
        if summary is None:
            from textual.content import Content

            summary = self._summaries[lesson.id] = Content.from_markup(
                f"[b]{lesson.title}[/] — [b]r[/] run · [b]m[/] models & knobs\n" + experiment_summary(lesson))
        self.query_one("#experiment", Summary).show(summary)
        self.show_text(lesson)
        if self.is_attached:
            self.app.note(lesson, opened=True, screen="browser")

    def show_text(self, lesson: Lesson) -> None:
        """Show the lesson's text, laid out once per lesson and width and kept."""
        if lesson is not self.lesson:
            return
        self.query_one("#lesson-scroll", LessonText).show(lesson.id, lesson.reading)

    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        if isinstance(event.node.data, Lesson):
            self.show(event.node.data)

    @on(Tree.NodeSelected)
    def _selected(self, event: Tree.NodeSelected) -> None:
        if isinstance(event.node.data, Lesson):
            self.show(event.node.data, at_once=True)
            self.query_one("#lesson-scroll").focus()

    def action_run(self) -> None:
        if self.lesson is not None:
            self.app.start_run(self.lesson.config(), self.lesson)

    def action_models(self) -> None:
        if self.lesson is not None:
            from dlcourse_tui.tui.screens.picker import PickerScreen

            self.app.push_screen(PickerScreen(self.lesson))

    def action_dashboard(self) -> None:
        self.app.action_dashboard()
