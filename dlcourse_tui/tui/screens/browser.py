"""The lesson browser: chapters and lessons as a tree beside the lesson text and a
summary of its experiment. Reads lesson files only (no torch)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown, Static, Tree

from dlcourse_tui.lessons import Lesson, load_lessons

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

    def __init__(self) -> None:
        super().__init__()
        self.lessons = load_lessons()
        self.lesson: Lesson | None = self.lessons[0] if self.lessons else None

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
                with VerticalScroll(id="lesson-scroll"):
                    yield Markdown(id="lesson-text")
                yield Static(id="experiment", markup=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "dlc"
        self.sub_title = "lessons"
        tree = self.query_one(Tree)
        tree.focus()
        # put the cursor on the first lesson (line 0 is the chapter)
        tree.cursor_line = 1 if self.lessons else 0
        self.show(self.lesson)

    def show(self, lesson: Lesson | None) -> None:
        if lesson is None:
            return
        self.lesson = lesson
        self.query_one("#lesson-text", Markdown).update(lesson.body)
        self.query_one("#lesson-scroll").scroll_home(animate=False)
        self.query_one("#experiment", Static).update(
            f"[b]{lesson.title}[/] — [b]r[/] run · [b]m[/] models & knobs\n" + experiment_summary(lesson))

    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        if isinstance(event.node.data, Lesson):
            self.show(event.node.data)

    @on(Tree.NodeSelected)
    def _selected(self, event: Tree.NodeSelected) -> None:
        if isinstance(event.node.data, Lesson):
            self.show(event.node.data)
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
