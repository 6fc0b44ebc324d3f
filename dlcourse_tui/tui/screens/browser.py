"""The lesson browser: chapters and lessons as a tree beside the lesson text and a
summary of its experiment. Reads lesson files only (no torch)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Markdown, Static, Tree

from dlcourse_tui.tui.widgets.keybar import KeyBar
from dlcourse_tui.lessons import Lesson, broken_lessons, load_lessons

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


class BrowserScreen(Screen):
    """Pick a lesson, read it, start its experiment."""

    BINDINGS = [
        Binding("r", "run", "Run"),
        Binding("m", "models", "Models & knobs"),
        Binding("d", "dashboard", "Dashboard", show=False),
        Binding("tab", "focus_next", "Focus", show=False),
    ]

    TEXT_DELAY = 0.25  # seconds the cursor rests on a lesson before its text is laid out

    def __init__(self) -> None:
        super().__init__()
        self.lessons = load_lessons()
        self.lesson: Lesson | None = self.lessons[0] if self.lessons else None
        self.texts: dict[str, Markdown] = {}  # lesson id -> its laid-out text (shown again at no cost)
        self._text_timer = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            tree: Tree[Lesson | None] = Tree("Course", id="lesson-tree")
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
                yield VerticalScroll(id="lesson-scroll")
                yield Static(id="experiment", markup=True)
        yield KeyBar()

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

    def show(self, lesson: Lesson | None, *, at_once: bool = False) -> None:
        """The lesson's summary now; its text once the cursor rests (laying out Markdown
        takes 0.1-0.8 s on a busy 2-core machine, too long to do on every arrow key)."""
        if lesson is None:
            return
        self.lesson = lesson
        self.query_one("#experiment", Static).update(
            f"[b]{lesson.title}[/] — [b]r[/] run · [b]m[/] models & knobs\n" + experiment_summary(lesson))
        if self._text_timer is not None:
            self._text_timer.stop()
            self._text_timer = None
        if at_once or lesson.id in self.texts:
            self.show_text(lesson)
        else:
            self._text_timer = self.set_timer(self.TEXT_DELAY, lambda: self.show_text(lesson))

    def show_text(self, lesson: Lesson) -> None:
        """Show the lesson's text, laid out once per lesson and kept."""
        if lesson is not self.lesson:
            return
        scroll = self.query_one("#lesson-scroll", VerticalScroll)
        text = self.texts.get(lesson.id)
        if text is None:
            text = self.texts[lesson.id] = Markdown(lesson.body, classes="lesson-text")
            scroll.mount(text)
        for other in self.texts.values():
            other.display = other is text
        scroll.scroll_home(animate=False)

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
