"""Vocabulary parsing, prompt templates and the cached CLIP text classifier.

The classifier (torch, open_clip) is imported on first use of its names, so
that parsing a vocabulary stays cheap (command-line checks before heavy imports).
"""
from .splits import canonical_class_name, seen_mask
from .templates import IMAGENET_TEMPLATES, TEMPLATE_SETS, VILD_TEMPLATES, get_templates
from .vocabulary import (Vocabulary, builtin_vocabularies, normalize_name, parse_vocabulary,
                         read_vocabulary_file, register_builtin_vocabulary,
                         vocabulary_from_metainfo)

__all__ = [
    'TextClassifier', 'build_text_classifier', 'default_cache_dir', 'IMAGENET_TEMPLATES',
    'TEMPLATE_SETS', 'VILD_TEMPLATES', 'get_templates', 'Vocabulary', 'builtin_vocabularies',
    'normalize_name', 'parse_vocabulary', 'read_vocabulary_file', 'register_builtin_vocabulary',
    'canonical_class_name', 'seen_mask', 'vocabulary_from_metainfo',
]
_CLASSIFIER_NAMES = ('TextClassifier', 'build_text_classifier', 'default_cache_dir')


def __getattr__(name: str):
    if name in _CLASSIFIER_NAMES:
        from . import classifier
        return getattr(classifier, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
