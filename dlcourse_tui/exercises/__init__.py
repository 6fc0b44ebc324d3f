"""Exercises: the one function that matters, written by the learner, graded by `dlc check`,
then plugged into the lesson's real experiment with `dlc run LESSON --use NAME`.

Each exercise is a folder in its lesson, lessons/NN-slug/exercises/NAME/:

    exercise.toml   title, the functions to write, the task in a few lines, the time limit
    starter.py      signatures, docstrings with shapes and equations, `raise NotImplementedError`
    solution.py     the reference solution
    checks.py       visible and hidden checks (`@check`), written with checking.py's helpers
    plug.py         optional: how the learner's functions replace the project's own in a run

The package:

    registry.py     find the exercises of every lesson (reads toml only; no torch)
    workspace.py    the learner's files and last results under $DLC_HOME/exercises
    checking.py     what checks.py files use: @check, expect_close, grad_check, ...
    worker.py       the subprocess that imports the learner's file and runs the checks
    runner.py       starts the worker with a time limit and turns what happened into an Outcome
    messages.py     an Outcome as the few lines a learner reads
    use.py          `--use NAME`: check, record in the run's config, plug in for the run
    verify.py       for `dlc lesson check`: every starter fails, every reference passes
"""
