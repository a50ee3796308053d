"""Training machinery on MMEngine: runner, checkpoint safety, hooks, optimizers."""
from .checkpoint import find_resume_checkpoint, load_runner_checkpoint
from .runner import VitaminRunner

__all__ = ['VitaminRunner', 'find_resume_checkpoint', 'load_runner_checkpoint']
