"""Runs: the floor where a configuration becomes a trained, portable model.

config -> :func:`assemble` (data, model, task, spec) -> :func:`train` (the run folder:
checkpoints, logs, evaluation, report) -> :func:`load_run` (the model back, with its task and
transforms, from the folder or one checkpoint) -> ``run.predict`` / :func:`export_run` /
:func:`evaluate_run`.
"""

from cnnkit.runs.assemble import Assembly, assemble, build_model
from cnnkit.runs.evaluate import evaluate_model, evaluate_run
from cnnkit.runs.export import export_run
from cnnkit.runs.folder import RunFolder
from cnnkit.runs.predict import Run, load_run
from cnnkit.runs.report import write_report
from cnnkit.runs.sanity import sanity
from cnnkit.runs.spec import InferenceSpec, SpecError
from cnnkit.runs.train import train

__all__ = ["Assembly", "InferenceSpec", "Run", "RunFolder", "SpecError", "assemble",
           "build_model", "evaluate_model", "evaluate_run", "export_run", "load_run", "sanity",
           "train", "write_report"]
