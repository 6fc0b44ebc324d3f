"""`dlc models`: the registered models with task, parameter count and description."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("models")(list_models_cmd)


def list_models_cmd(
    lesson: str = typer.Option(None, "--lesson", "-l", help="Only the models this lesson offers, sized for its data."),
    pattern: str = typer.Argument("*", help="Filter names with a shell pattern, e.g. 'mlp*'."),
) -> None:
    """List models: name, task, inputs, parameter count and a one-line description."""
    from rich.table import Table

    from dlcourse_tui.cli.console import out
    from dlcourse_tui.lessons import find_lesson
    from dlcourse_tui.models.registry import count_params, create_model, get_entry, list_models

    input_shape = num_classes = None
    if lesson:
        les = find_lesson(lesson)
        entries = [get_entry(name) for name in les.models]
        cfg = les.config()
        from dlcourse_tui.data import load_dataset

        data = load_dataset(cfg.data, seed=0, args={**cfg.data_args, "n_train": 2, "n_val": 2}, lesson=les.id)
        input_shape, num_classes = data.input_shape, data.num_classes
        title = f"models of {les.id} (for {cfg.data}: input {'×'.join(map(str, input_shape))}, {num_classes} classes)"
    else:
        entries = list_models(pattern)
        title = "models (parameters counted for the example input)"
    table = Table(title=title, title_justify="left")
    for col, justify in (("name", "left"), ("task", "left"), ("input", "left"), ("params", "right"), ("description", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for e in entries:
        shape = input_shape or e.example_shape
        classes = num_classes or (2 if len(shape) == 1 else 10)
        try:
            params = f"{count_params(create_model(e.name, input_shape=shape, num_classes=classes)):,}"
        except Exception:  # a model that does not fit this data
            params = "n/a"
        table.add_row(e.name, e.task, "×".join(map(str, shape)), params, e.description)
    out.print(table)
