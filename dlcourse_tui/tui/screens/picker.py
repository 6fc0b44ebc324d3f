"""The model picker: the lesson's models and a form of its knobs, validated as you type."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from dlcourse_tui.tui.widgets.keybar import KeyBar
from dlcourse_tui.engine.config import Knob, flatten
from dlcourse_tui.errors import UserError
from dlcourse_tui.lessons import Lesson
from dlcourse_tui.tui.messages import ParamCounts

_PARAM_CACHE: dict[tuple[str, str], tuple[int | None, str]] = {}


def knob_defaults(lesson: Lesson, variant: str = "") -> dict[str, Any]:
    """Each knob's default value in `variant` ('' when the model or dataset decides)."""
    values = flatten(lesson.config(variant=variant).to_dict())
    # to_dict names the model and data tables "model.name", "data.name"; task args are "task_args.*"
    values = {("task." + k[10:] if k.startswith("task_args.") else k): v for k, v in values.items()}
    return {key: values.get(key, "") for key in lesson.knobs}


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class KnobRow(Horizontal):
    """One knob: its name, an Input, and its range (or, when invalid, the reason)."""

    DEFAULT_CSS = """
    KnobRow { height: auto; }
    """

    def __init__(self, knob: Knob, value: str, name: str, name_width: int) -> None:
        super().__init__(classes="knob-row")
        self.knob = knob
        self.value = value
        self.name_text, self.name_width = name, name_width  # the key as --set takes it; the column's width
        self.error = ""

    def compose(self) -> ComposeResult:
        k = self.knob
        label = Label(self.name_text, classes="knob-name")
        label.styles.width = self.name_width  # every name whole, one space before the value
        yield label
        placeholder = "default" if self.value == "" else ""
        yield Input(self.value, placeholder=placeholder, compact=True, id=f"knob-{k.key.replace('.', '-')}",
                    classes="knob-input", tooltip=k.help)
        yield Static(k.range_text(), classes="knob-range", markup=False)

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    def validate(self) -> bool:
        text = self.input.value.strip()
        note = self.query_one(".knob-range", Static)
        if text == "":
            self.error = ""
        else:
            try:
                self.knob.parse(text)
                self.error = ""
            except UserError as e:
                self.error = str(e)
        self.set_class(bool(self.error), "invalid")
        note.update(self.error or self.knob.range_text())
        return not self.error


class PickerScreen(Screen):
    """Choose a model, a variant and knob values; start a run with them."""

    walk_name = "picker"  # as walkthrough conditions name this screen

    @property
    def walk_lesson(self) -> Lesson:
        return self.lesson

    BINDINGS = [
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("ctrl+r", "defaults", "Defaults", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, lesson: Lesson, model: str | None = None) -> None:
        super().__init__()
        self.lesson = lesson
        self.variant = ""
        self.model = model if model in lesson.models else lesson.default_model

    def compose(self) -> ComposeResult:
        lesson = self.lesson
        yield Header()
        with VerticalScroll(id="picker-body"):
            yield Static(f"[b]{lesson.title}[/] · pick a model and turn the knobs", id="picker-title")
            yield OptionList(*[Option(self._model_label(m, _PARAM_CACHE.get((lesson.id, m))), id=m) for m in lesson.models],
                             id="models")
            yield Static("", id="model-help", markup=False)
            if lesson.variants:
                options = [(f"{name}: {desc}" if desc else name, name) for name, desc in lesson.variants.items()]
                yield Select(options, prompt="variant: (none, the defaults)", allow_blank=True, compact=True, id="variant")
            defaults = knob_defaults(lesson)
            knobs = VerticalScroll(id="knobs")
            knobs.can_focus = False  # tab goes from field to field
            names = {key: lesson.short_key(key) for key in lesson.knobs}
            width = max(map(len, names.values()), default=0) + 1
            with knobs:
                for key, knob in lesson.knobs.items():
                    yield KnobRow(knob, show_value(defaults[key]), names[key], width)
        yield Static("", id="picker-status", markup=False)
        with Horizontal(id="picker-buttons"):
            yield Button("Start ^s", id="start", variant="success", compact=True)
            yield Button("Defaults ^r", id="defaults", compact=True)
            yield Button("Back esc", id="back", compact=True)
        yield KeyBar()

    def _model_label(self, name: str, info: tuple[int | None, str] | None) -> str:
        count, desc = info or (None, "")
        params = f"{count:,} params" if isinstance(count, int) else "… params"
        star = "*" if name == self.lesson.default_model else ""
        return f"{name}{star} · {params}" + (f" · {desc}" if desc else "")

    def on_mount(self) -> None:
        self.title = "dlc"
        self.sub_title = f"{self.lesson.id}: model & knobs"
        models = self.query_one("#models", OptionList)
        models.highlighted = self.lesson.models.index(self.model)
        models.focus()
        self._count_params()
        self.validate_all()

    # -- parameter counts (torch) on a worker thread ------------------------------------
    @work(thread=True, exclusive=True, group="params", exit_on_error=False)
    def _count_params(self) -> None:
        counts = {}
        for name in self.lesson.models:
            key = (self.lesson.id, name)
            if key not in _PARAM_CACHE:
                _PARAM_CACHE[key] = (count_params(self.lesson, name), describe(name))
            counts[name] = _PARAM_CACHE[key]
        self.post_message(ParamCounts(counts))

    def on_param_counts(self, message: ParamCounts) -> None:
        models = self.query_one("#models", OptionList)
        for name, info in message.counts.items():
            models.replace_option_prompt(name, self._model_label(name, info))

    # -- form ---------------------------------------------------------------------------
    def validate_all(self) -> bool:
        rows = list(self.query(KnobRow))
        ok = all([row.validate() for row in rows])
        bad = [row for row in rows if row.error]
        status = self.query_one("#picker-status", Static)
        config_error = ""
        if ok:
            try:
                self.build_config()
            except UserError as e:
                config_error = str(e)
                ok = False
        if bad:
            status.update(f"✗ {bad[0].error}")
        elif config_error:
            status.update(f"✗ {config_error}")
        else:
            status.update("ready: ctrl+s starts the run")
        status.set_class(not ok, "invalid")
        self.query_one("#start", Button).disabled = not ok
        return ok

    def sets(self) -> list[str]:
        """key=value for every knob whose field differs from the variant's default."""
        defaults = knob_defaults(self.lesson, self.variant)
        out = []
        for row in self.query(KnobRow):
            text = row.input.value.strip()
            if text and text != show_value(defaults[row.knob.key]):
                out.append(f"{row.knob.key}={text}")
        return out

    def build_config(self):
        return self.lesson.config(variant=self.variant, sets=self.sets(), overrides={"model.name": self.model})

    @on(Input.Changed, ".knob-input")
    def _changed(self, event: Input.Changed) -> None:
        self.validate_all()

    @on(Input.Submitted, ".knob-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    @on(OptionList.OptionHighlighted, "#models")
    def _model(self, event: OptionList.OptionHighlighted) -> None:
        self.model = event.option.id or self.lesson.default_model
        if self.is_attached and self.model != self.lesson.default_model:
            self.app.note(self.lesson, model=self.model)
        self.query_one("#model-help", Static).update(f"model: {self.model}")
        if self.is_mounted:
            self.validate_all()

    @on(OptionList.OptionSelected, "#models")
    def _model_selected(self, event: OptionList.OptionSelected) -> None:
        self.focus_next()

    @on(Select.Changed, "#variant")
    def _variant(self, event: Select.Changed) -> None:
        self.variant = "" if event.value is Select.BLANK else str(event.value)
        self._fill(knob_defaults(self.lesson, self.variant))

    def _fill(self, values: dict[str, Any]) -> None:
        for row in self.query(KnobRow):
            with row.input.prevent(Input.Changed):
                row.input.value = show_value(values[row.knob.key])
        self.validate_all()

    def action_defaults(self) -> None:
        self._fill(knob_defaults(self.lesson, self.variant))
        self.notify("knobs reset to the defaults" + (f" of variant {self.variant}" if self.variant else ""), timeout=2)

    @on(Button.Pressed, "#defaults")
    def _defaults_button(self) -> None:
        self.action_defaults()

    @on(Button.Pressed, "#back")
    def _back_button(self) -> None:
        self.action_back()

    @on(Button.Pressed, "#start")
    def _start_button(self) -> None:
        self.action_start()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_start(self) -> None:
        if not self.validate_all():
            self.notify("fix the marked knob first", severity="warning", timeout=3)
            return
        config = self.build_config()
        from dlcourse_tui.course.facts import dotted

        values = dotted(config.to_dict())
        self.app.note(self.lesson, model=self.model, variant=self.variant,
                      knobs={k: values[k] for k in self.lesson.knobs if k in values})
        self.app.pop_screen()
        self.app.start_run(config, self.lesson)


def count_params(lesson: Lesson, model: str) -> int | None:
    """Parameters of `model` built for the lesson's data (imports torch: call it on a worker thread)."""
    try:
        from dlcourse_tui.data import load_dataset
        from dlcourse_tui.models.registry import create_model

        cfg = lesson.config(overrides={"model.name": model})
        data_args = {**cfg.data_args}
        if "n_train" in data_args:
            data_args["n_train"] = min(int(data_args["n_train"]), 16) or 16
        if "n_val" in data_args:
            data_args["n_val"] = min(int(data_args["n_val"]), 16) or 16
        data = load_dataset(cfg.data, seed=0, args=data_args, lesson=cfg.lesson)
        net = create_model(model, input_shape=data.input_shape, num_classes=data.num_classes, args=cfg.model_args)
        return sum(p.numel() for p in net.parameters())
    except Exception:  # noqa: BLE001 - a count is a nicety; the run will report real errors
        return None


def describe(model: str) -> str:
    """The registry's one-line description of `model` (imports torch: worker thread only)."""
    try:
        from dlcourse_tui.models.registry import get_entry

        return get_entry(model).description
    except Exception:  # noqa: BLE001
        return ""
