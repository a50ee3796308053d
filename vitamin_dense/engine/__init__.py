"""Training machinery on MMEngine: runner, checkpoint safety, hooks, optimizers."""
from .checkpoint import find_resume_checkpoint, load_runner_checkpoint
from .layer_decay import ViTaminLayerDecayOptimizerConstructor
from .multi_dataset_loop import MultiDatasetTestLoop, MultiDatasetValLoop
from .runner import VitaminRunner
from .vocabulary_hook import VocabularyHook

__all__ = ['VitaminRunner', 'VocabularyHook', 'ViTaminLayerDecayOptimizerConstructor',
           'find_resume_checkpoint', 'load_runner_checkpoint', 'MultiDatasetValLoop',
           'MultiDatasetTestLoop']
