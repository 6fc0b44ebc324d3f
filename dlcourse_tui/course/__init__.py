"""The course beyond one lesson's text: walkthrough steps and prediction questions
written in lesson.md as fenced blocks, the predicates that tick them, the learner's
progress, and checks for authors. Both front ends use it; the engine never imports it,
and nothing here imports torch (it reads lesson files, run folders and progress files).

    blocks.py       ```step and ```question blocks: parse and validate
    conditions.py   "run completed with variant overfit and metric val_acc < previous"
    facts.py        what the run store and the app know, as conditions see it
    progress.py     one small file per lesson in the data folder
    walkthrough.py  the steps' states, the next thing to do, predictions asked and marked
    check.py        `dlc lesson check`: what an author gets wrong, one sentence each
"""
