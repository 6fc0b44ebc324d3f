"""Lessons that build on earlier runs: a lesson may declare that it needs a model trained by
another lesson (a frozen image encoder, a language model) in its experiment.toml,

    [needs.encoder]
    lesson = "vision-transformer"                          # the lesson whose run it uses
    match = { "model.name" = "vit", "data.name" = "shapes" }  # what that run's config must hold
    help = "the ViT pretrained on shapes, frozen as the image encoder"

and a run of it then uses the newest completed run of that lesson whose config holds
`match` (or the one `--from RUN_ID` names). Which run it used is part of its config
("upstream": need name to run id), so a resumed run loads the same one. When there is no
such run, the front end trains the other lesson's default (with `match` laid over it) first.
Nothing here imports torch but `load_upstream`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dlcourse_tui.engine.config import flatten
from dlcourse_tui.errors import UserError

if TYPE_CHECKING:
    from dlcourse_tui.engine.config import RunConfig
    from dlcourse_tui.engine.runs import RunRecord

NEED_KEYS = {"lesson", "match", "help"}


@dataclass(frozen=True)
class Need:
    """One model a lesson builds on: from which lesson, with which settings."""

    name: str  # how the lesson's task asks for it, e.g. "encoder"
    lesson: str  # the id of the lesson whose run it uses
    match: dict[str, Any] = field(default_factory=dict)  # dotted keys that run's config must hold
    help: str = ""

    def describe(self) -> str:
        """'a trained vision-transformer run (model.name=vit, data.name=shapes)'."""
        held = ", ".join(f"{k}={v}" for k, v in self.match.items())
        return f"a completed {self.lesson} run" + (f" ({held})" if held else "")


@dataclass(frozen=True)
class Upstream:
    """A run a task builds on, loaded: its id, its config and its task state (checkpoint)."""

    run_id: str
    config: dict[str, Any]
    state: dict[str, Any]  # the checkpoint's "task" part: {"modules": {...}, "optimizers": ...}

    def module_state(self, module: str = "model") -> dict[str, Any]:
        """The saved parameters and buffers of one of its modules."""
        try:
            return self.state["modules"][module]
        except KeyError:
            raise UserError(f"run {self.run_id} has no module {module!r} to build on "
                            f"(it has {', '.join(self.state.get('modules', {})) or 'none'}).") from None


def parse_needs(experiment: dict[str, Any], where: str) -> list[Need]:
    """The [needs.NAME] tables of an experiment.toml, or UserError naming the fault."""
    table = experiment.get("needs", {})
    if not isinstance(table, dict):
        raise UserError(f"{where}: needs: must be tables such as [needs.encoder] with lesson = \"...\".")
    needs = []
    for name, body in table.items():
        if not isinstance(body, dict) or not isinstance(body.get("lesson"), str):
            raise UserError(f"{where}: needs.{name}: give the lesson it builds on, e.g. lesson = \"vision-transformer\".")
        unknown = set(body) - NEED_KEYS
        if unknown:
            raise UserError(f"{where}: needs.{name}.{sorted(unknown)[0]}: unknown key; allowed: {', '.join(sorted(NEED_KEYS))}.")
        match = body.get("match", {})
        if not isinstance(match, dict):
            raise UserError(f"{where}: needs.{name}.match: must be a table of dotted keys, e.g. {{ \"model.name\" = \"vit\" }}.")
        needs.append(Need(name, body["lesson"], dict(match), str(body.get("help", ""))))
    return needs


def misfit(need: Need, record: "RunRecord") -> str:
    """Why `record` cannot serve as `need` ('' when it can), in words a learner reads."""
    cfg = record.config
    if cfg.get("lesson") != need.lesson:
        return f"it is a {cfg.get('lesson', '?')} run, not a {need.lesson} run"
    status = record.status
    if status != "completed":
        return f"it is {status}, not completed"
    flat = flatten(cfg)
    flat.update(flatten(cfg.get("task_args", {}), "task."))  # config.json says task_args; match says task.*
    for key, want in need.match.items():
        have = flat.get(key)
        if have != want and not (isinstance(want, (int, float)) and isinstance(have, (int, float)) and float(have) == float(want)):
            return f"its {key} is {have!r}, not {want!r}"
    if not record.checkpoint.is_file():
        return "it saved no checkpoint"
    return ""


def find_upstream(need: Need, records: list["RunRecord"]) -> "RunRecord | None":
    """The newest run of `records` that fits `need` (newest by creation: ids name the second
    a run started, and two runs of the same second sort by their lesson's name)."""
    fitting = [r for r in records if not misfit(need, r)]
    return max(fitting, key=_created, default=None)


def _created(record: "RunRecord") -> int:
    try:
        return (record.path / "config.json").stat().st_mtime_ns
    except OSError:
        return 0


def resolve_upstream(config: "RunConfig", needs: list[Need], chosen: list[str] = (),
                     records: list["RunRecord"] | None = None) -> tuple["RunConfig", list[Need]]:
    """`config` with a run for each need (the one `chosen` names, else the newest that fits),
    and the needs no run fits yet. A chosen run that fits no need is a UserError."""
    from dlcourse_tui.engine.runs import find_run, list_runs

    if not needs:
        if chosen:
            raise UserError(f"lesson {config.lesson} builds on no earlier run; drop --from.")
        return config, []
    records = list_runs() if records is None else records
    upstream = dict(config.upstream)
    for run_id in chosen:
        record = find_run(run_id)
        fits = [n for n in needs if n.lesson == record.config.get("lesson")]
        if not fits:
            wanted = " or ".join(n.lesson for n in needs)
            raise UserError(f"--from {run_id}: run {record.id} is a {record.config.get('lesson', '?')} run; "
                            f"lesson {config.lesson} builds on a {wanted} run.")
        need = fits[0]
        why = misfit(need, record)
        if why:
            raise UserError(f"--from {run_id}: run {record.id} cannot be the {need.name} of lesson {config.lesson}: "
                            f"{why}. Name {need.describe()}, or drop --from to use (or train) one.")
        upstream[need.name] = record.id
    missing = []
    for need in needs:
        if need.name in upstream:
            continue
        found = find_upstream(need, records)
        if found is None:
            missing.append(need)
        else:
            upstream[need.name] = found.id
    return replace(config, upstream=upstream), missing


def upstream_config(need: Need) -> "RunConfig":
    """The config that trains what `need` asks for: its lesson's default with `match` laid over."""
    from dlcourse_tui.lessons import find_lesson

    return find_lesson(need.lesson).config(overrides=dict(need.match))


def load_upstream(config: "RunConfig") -> dict[str, Upstream]:
    """The runs `config` builds on, loaded (weights only), or UserError when one is gone."""
    from dlcourse_tui.engine.checkpoint import CheckpointError, load_checkpoint
    from dlcourse_tui.engine.runs import find_run

    out = {}
    for name, run_id in config.upstream.items():
        try:
            record = find_run(run_id)
            state = load_checkpoint(record.checkpoint)
        except (UserError, CheckpointError) as e:
            raise UserError(f"this run builds on run {run_id} ({name}), which cannot be loaded: {e}") from None
        out[name] = Upstream(record.id, record.config, state["task"])
    return out
