"""--use nt_xent: the SimCLR pretraining takes the learner's loss."""

from typing import Any


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: the nt_xent the self-supervised task calls."""
    from dlcourse_tui.errors import UserError

    method = config.task_args.get("method", "simclr")
    if method != "simclr":
        raise UserError(f"--use nt_xent replaces SimCLR's loss, and this run's task.method is {method!r}: "
                        "use --variant simclr (or --set method=simclr).")
    return {"dlcourse_tui.tasks.ssl:nt_xent": mine.nt_xent}
