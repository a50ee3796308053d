"""Training machinery on MMEngine: runner, checkpoint safety, hooks, optimizers."""
from .checkpoint import find_resume_checkpoint, load_runner_checkpoint
from .layer_decay import ViTaminLayerDecayOptimizerConstructor
from .runner import VitaminRunner

__all__ = ['VitaminRunner', 'ViTaminLayerDecayOptimizerConstructor', 'find_resume_checkpoint', 'load_runner_checkpoint']
