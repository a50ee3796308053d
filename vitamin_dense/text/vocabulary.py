"""Vocabularies: the classes a user names at run time, with synonyms.

Grammar of a vocabulary string (the ``--vocab`` flag):

* Without a semicolon, commas separate classes, one name each:
  ``"cat,dog"`` -> two classes.
* With a semicolon, semicolons separate classes and commas separate synonyms
  of one class (as ODISE): ``"kitten, cat; dog"`` -> two classes,
  ``[kitten, cat]`` and ``[dog]``. A single class with synonyms ends with a
  semicolon: ``"kitten, cat;"``. Because one ``;`` changes what every comma
  means, a string where it does (commas joined names into one class) logs a
  warning saying how it was read, once per string
  (:data:`GRAMMAR_WARNING_LOGGER` at WARNING; a list of synonym lists or a
  file never warns).
* ``"dataset:NAME"`` -> the class names of a built-in data set vocabulary.
* A path to an existing text file -> one class per line, synonyms separated
  by commas on the line; blank lines and lines starting with ``#`` are skipped.
  FC-CLIP's files (every line ``id:name,synonym,...``, as its
  ``*_with_prompt_eng.txt``) load too: lines reading ``invalid_class_id`` are
  skipped (in FC-CLIP's files that is every id-0 line except Cityscapes'
  ``road`` and VOC's ``background``, the rule its loaders apply), the others
  are the classes in file order.

The first synonym names the class in outputs. Names are compared after
lower-casing, turning underscores into spaces and collapsing whitespace. A
name repeated within a class is dropped, with a warning (FC-CLIP's ADE20K list
names ``kitchen range`` twice for ``stove``). A name given to two classes is an
error in a typed vocabulary; files and data-set vocabularies may share names
between classes, as data sets do (ADE20K-847 has three classes called ``bag``).
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import VocabularyError

VocabSpec = Union[str, Sequence[Union[str, Sequence[str]]], 'Vocabulary']

_BUILTIN: Dict[str, Callable[[], Sequence[Union[str, Sequence[str]]]]] = {}

GRAMMAR_WARNING_LOGGER = __name__
_grammar_logger = logging.getLogger(GRAMMAR_WARNING_LOGGER)
_grammar_warned: set = set()


def normalize_name(name: str) -> str:
    """Canonical form used to detect duplicates: lower case, single spaces."""
    return re.sub(r'\s+', ' ', name.replace('_', ' ')).strip().lower()


def prompt_name(name: str) -> str:
    """The form of a name put into prompts (underscores become spaces)."""
    return re.sub(r'\s+', ' ', name.replace('_', ' ')).strip()


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of classes, each a tuple of synonyms.

    ``shared_names``: whether two classes may share a name (data-set
    vocabularies and files; a typed vocabulary may not).
    """

    classes: Tuple[Tuple[str, ...], ...]
    shared_names: bool = field(default=False, compare=False)

    def __post_init__(self):
        if not self.classes:
            raise VocabularyError('the vocabulary is empty: name at least one class, '
                                  'e.g. --vocab "cat,dog"')
        seen: Dict[str, int] = {}
        classes = []
        for idx, synonyms in enumerate(self.classes):
            if not synonyms:
                raise VocabularyError(f'class {idx + 1} of the vocabulary has no name')
            kept: List[str] = []
            in_class = set()
            for name in synonyms:
                key = normalize_name(name)
                if not key:
                    raise VocabularyError(f'class {idx + 1} of the vocabulary has an empty name')
                if key in in_class:
                    warnings.warn(f"class {idx + 1} ('{synonyms[0]}') of the vocabulary names "
                                  f"'{name}' twice: the repeat is dropped", stacklevel=3)
                    continue
                if key in seen and not self.shared_names:
                    raise VocabularyError(f"'{name}' appears in classes {seen[key] + 1} and "
                                          f'{idx + 1} of the vocabulary; each name may appear '
                                          'once')
                in_class.add(key)
                seen.setdefault(key, idx)
                kept.append(name)
            classes.append(tuple(kept))
        object.__setattr__(self, 'classes', tuple(classes))

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.names)

    def __getitem__(self, idx: int) -> str:
        return self.names[idx]

    @property
    def names(self) -> List[str]:
        """Display name of each class (its first synonym)."""
        return [synonyms[0] for synonyms in self.classes]

    def key(self) -> Tuple[Tuple[str, ...], ...]:
        """Hashable identity (what the text cache keys on)."""
        return tuple(tuple(prompt_name(n) for n in syn) for syn in self.classes)

    def to_string(self) -> str:
        """The vocabulary in the flag grammar (round-trips through :func:`parse_vocabulary`)."""
        if all(len(s) == 1 for s in self.classes):
            return ','.join(s[0] for s in self.classes)
        return '; '.join(', '.join(s) for s in self.classes) + (';' if len(self.classes) == 1 else '')

    @classmethod
    def from_names(cls, names: Iterable[Union[str, Sequence[str]]],
                   shared_names: bool = False) -> 'Vocabulary':
        """From a list whose items are a name or a list of synonyms."""
        classes = []
        for item in names:
            if isinstance(item, str):
                synonyms = tuple(s.strip() for s in item.split(',')) if ',' in item else (item.strip(),)
            else:
                synonyms = tuple(str(s).strip() for s in item)
            classes.append(tuple(s for s in synonyms if s) or ('',))
        return cls(tuple(classes), shared_names)


def register_builtin_vocabulary(name: str,
                                loader: Callable[[], Sequence[Union[str, Sequence[str]]]]) -> None:
    """Make ``dataset:<name>`` resolve to the class list ``loader()`` returns."""
    _BUILTIN[name.lower()] = loader


def builtin_vocabularies() -> List[str]:
    return sorted(_BUILTIN)


def parse_vocabulary(spec: VocabSpec) -> Vocabulary:
    """Parse a vocabulary string, file, ``dataset:NAME`` or list (see the module doc)."""
    if isinstance(spec, Vocabulary):
        return spec
    if spec is None:
        raise VocabularyError('no vocabulary given: name the classes, e.g. --vocab "cat,dog"')
    if not isinstance(spec, str):
        return Vocabulary.from_names(spec)
    text = spec.strip()
    if not text:
        raise VocabularyError('the vocabulary is empty: name at least one class, '
                              'e.g. --vocab "cat,dog"')
    if text.lower().startswith('dataset:'):
        key = text.split(':', 1)[1].strip().lower()
        _load_builtin_modules()
        if key not in _BUILTIN:
            raise VocabularyError(f"unknown data set vocabulary '{key}'; known: "
                                  f"{', '.join(builtin_vocabularies()) or 'none'}")
        return Vocabulary.from_names(_BUILTIN[key](), shared_names=True)
    if os.path.isfile(os.path.expanduser(text)):
        return read_vocabulary_file(os.path.expanduser(text))
    if ';' in text:
        classes = [tuple(s.strip() for s in part.split(',') if s.strip())
                   for part in text.split(';') if part.strip()]
        empty = [i + 1 for i, c in enumerate(classes) if not c]
        if empty:
            raise VocabularyError(f'class {empty[0]} of the vocabulary has no name')
        vocab = Vocabulary(tuple(classes))
        _warn_synonym_reading(text, vocab)
        return vocab
    parts = [p.strip() for p in text.split(',')]
    if any(not p for p in parts):
        raise VocabularyError(f"empty class name in vocabulary '{text}' (two commas in a row, "
                              'or a trailing comma?)')
    return Vocabulary(tuple((p,) for p in parts))


def _warn_synonym_reading(text: str, vocab: Vocabulary) -> None:
    """Say how a ``;`` string was read when its commas joined names into one class.

    ``"kitten, cat"`` is two classes but ``"kitten, cat; dog"`` makes kitten
    and cat synonyms: the one ``;`` changes every comma. The warning shows the
    reading and the spelling of the other one, once per string.
    """
    grouped = [c for c in vocab.classes if len(c) > 1]
    if not grouped or text in _grammar_warned:
        return
    _grammar_warned.add(text)
    reading = ', '.join('[' + ' = '.join(c) + ']' for c in vocab.classes)
    names = [n for c in vocab.classes for n in c]
    _grammar_logger.warning(
        "vocabulary '%s' has a ';', so its commas join synonyms: %d classes %s; for %d "
        "separate classes write '%s'", text, len(vocab), reading, len(names), '; '.join(names))


def vocabulary_from_metainfo(metainfo: Optional[Mapping[str, Any]],
                             where: str = 'the data set') -> Vocabulary:
    """The classes of a data set's ``metainfo``, in label order, with its synonyms.

    ``metainfo['vocabulary']``, when present, is the complete list (one
    synonym tuple per class, first = display name: the names a model prompts
    with, e.g. FC-CLIP's curated names for the data sets it evaluates on).
    Otherwise each class is its ``classes`` name followed by the ``synonyms``
    entry of the same index (a list, or one comma-separated string), repeats
    dropped. Open-vocabulary models take their class list from here, because
    data set labels index ``classes``.
    """
    classes = metainfo.get('classes') if metainfo else None
    if not classes:
        raise VocabularyError(f"{where} has no 'classes' in its metainfo: cannot build the "
                              'vocabulary (set the vocabulary in the model config instead)')
    complete = metainfo.get('vocabulary')
    if complete is not None:
        if len(complete) != len(classes):
            raise VocabularyError(f"{where}: {len(complete)} 'vocabulary' entries for "
                                  f'{len(classes)} classes (one entry per class)')
        return Vocabulary.from_names(complete, shared_names=True)
    synonyms = metainfo.get('synonyms')
    if synonyms is not None and len(synonyms) != len(classes):
        raise VocabularyError(f"{where}: {len(synonyms)} 'synonyms' entries for "
                              f'{len(classes)} classes (one entry per class)')
    entries = []
    for i, name in enumerate(classes):
        names = [str(name)]
        if synonyms is not None:
            extra = synonyms[i]
            names += extra.split(',') if isinstance(extra, str) else [str(n) for n in extra]
        seen, unique = set(), []
        for n in names:
            key = normalize_name(n)
            if key and key not in seen:
                seen.add(key)
                unique.append(n.strip())
        entries.append(tuple(unique))
    return Vocabulary.from_names(entries, shared_names=True)


_FCCLIP_LINE = re.compile(r'^\s*(\d+)\s*:(.*)$')
_FCCLIP_INVALID = 'invalid_class_id'


def read_vocabulary_file(path: str) -> Vocabulary:
    """One class per line, synonyms separated by commas, ``#`` comments; or
    FC-CLIP's ``id:name,synonym,...`` files (see the module doc)."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VocabularyError(f'cannot read vocabulary file {path}: {exc}') from exc
    lines = [ln.strip() for ln in lines]
    lines = [ln for ln in lines if ln and not ln.startswith('#')]
    numbered = [_FCCLIP_LINE.match(ln) for ln in lines]
    if lines and all(numbered):  # FC-CLIP's format
        lines = [m.group(2).strip() for m in numbered
                 if m.group(2).strip() != _FCCLIP_INVALID]
    classes = [tuple(s.strip() for s in line.split(',') if s.strip()) for line in lines]
    empty = [i + 1 for i, c in enumerate(classes) if not c]
    if empty:
        raise VocabularyError(f'vocabulary file {path}: class {empty[0]} has no name')
    if not classes:
        raise VocabularyError(f'vocabulary file {path} names no class (one class per line)')
    return Vocabulary(tuple(classes), shared_names=True)


def _load_builtin_modules() -> None:
    """Data set modules register their vocabularies when imported."""
    try:
        import vitamin_dense.datasets  # noqa: F401
    except ImportError:
        pass
