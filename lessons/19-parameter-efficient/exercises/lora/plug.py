"""--use lora: every LoRA layer of the run computes its output with the learner's lora_linear,
and evaluation merges the layers with the learner's merge_lora."""

from typing import Any


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: models.peft.lora_linear and models.peft.merge_lora."""
    from dlcourse_tui.errors import UserError

    method = config.task_args.get("method", "lora")
    if method != "lora":
        raise UserError(f"--use lora replaces the LoRA layers, which a {method} run does not have: "
                        "drop --variant (LoRA is the lesson's default), or --set method=lora.")
    return {"dlcourse_tui.models.peft:lora_linear": mine.lora_linear,
            "dlcourse_tui.models.peft:merge_lora": mine.merge_lora}
