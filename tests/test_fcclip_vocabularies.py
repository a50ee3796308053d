"""FC-CLIP's class names: the built-in vocabularies of the sets FC-CLIP evaluates on are
its curated lists, its files load as vocabulary files, and the seen rule is its own.

The reference lists (``../shared/reference/fcclip_vocabularies/``, FC-CLIP's
``*_with_prompt_eng.txt`` with a SOURCE.md giving the counts FC-CLIP's rule yields)
are compared when present; the counts below are those of SOURCE.md, so the
built-in vocabularies are checked without them too.
"""
import os
import os.path as osp
import re
import warnings

import pytest

from vitamin_dense.datasets.class_names import fcclip_vocabulary
from vitamin_dense.errors import VocabularyError
from vitamin_dense.text import normalize_name, parse_vocabulary, seen_mask

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# ../shared/reference beside the checkout; VITAMIN_DENSE_REFERENCE moves it (e.g. a worktree)
REFERENCE = osp.join(os.environ.get('VITAMIN_DENSE_REFERENCE',
                                    osp.normpath(osp.join(REPO, '..', 'shared', 'reference'))),
                     'fcclip_vocabularies')
needs_reference = pytest.mark.skipif(
    not osp.isdir(REFERENCE),
    reason=f'FC-CLIP reference lists not found at {REFERENCE} (../shared/reference beside the '
           'checkout, or set VITAMIN_DENSE_REFERENCE)')

# dataset:NAME -> (FC-CLIP's file, classes, seen against COCO panoptic, classes repeating a
# synonym): the table of SOURCE.md.
SETS = {
    'ade150': ('ade20k_150', 150, 64, 1),
    'ade847': ('ade20k_847', 847, 101, 1),
    'cityscapes': ('cityscapes', 19, 17, 0),
    'mapillary': ('mapillary_vistas', 65, 26, 1),
    'pc59': ('pascal_ctx_59', 59, 51, 0),
    'pc459': ('pascal_ctx_459', 459, 85, 0),
    'voc21': ('pascal_voc_21', 21, 21, 1),
}


def _reference_file(stem: str) -> str:
    return osp.join(REFERENCE, f'{stem}_with_prompt_eng.txt')


def _fcclip_rule(path: str, keep_id0: bool):
    """FC-CLIP's loaders, written out: skip invalid lines (and id 0 unless kept), split synonyms."""
    classes = []
    with open(path, encoding='utf-8') as f:
        for line in f.read().splitlines():
            idx, names = line.split(':', 1)
            if (int(idx) == 0 and not keep_id0) or names == 'invalid_class_id':
                continue
            classes.append(names.replace(', ', ',').split(','))
    return classes


def _dedupe(names):
    out = []
    for n in names:
        if n not in out:
            out.append(n)
    return tuple(out)


def test_builtin_vocabularies_have_fcclip_counts_and_seen_classes():
    """Class counts and seen classes of SOURCE.md, from the package's own files."""
    train = parse_vocabulary('dataset:coco_panoptic')
    assert len(train) == 133
    for name, (_, size, seen, _) in SETS.items():
        vocab = parse_vocabulary(f'dataset:{name}')
        assert len(vocab) == size, name
        assert sum(seen_mask(vocab, train)) == seen, name
    voc20 = parse_vocabulary('dataset:voc20')
    assert voc20.classes == parse_vocabulary('dataset:voc21').classes[1:]
    # FC-CLIP's own names, not the data sets' raw ones
    ade = parse_vocabulary('dataset:ade150')
    assert ade.classes[0] == ('wall', 'walls', 'brick wall', 'stone wall', 'interior wall')
    # FC-CLIP names 'kitchen range' twice for stove: listed once
    assert ade.classes[71] == ('stove', 'kitchen stove', 'kitchen range', 'cooking stove')
    assert train.classes[-2:] == (('wall', 'walls'), ('rug',))
    assert 'wall-other-merged' not in {n for c in train.classes for n in c}


@needs_reference
@pytest.mark.parametrize('name', sorted(SETS) + ['coco_panoptic', 'voc20'])
def test_builtin_vocabulary_equals_fcclip_list(name):
    stem = {'coco_panoptic': 'coco_panoptic', 'voc20': 'pascal_voc_21'}.get(
        name, SETS.get(name, (None,))[0])
    keep_id0 = stem in ('cityscapes', 'pascal_voc_21')
    expected = [_dedupe(c) for c in _fcclip_rule(_reference_file(stem), keep_id0)]
    if name == 'voc20':  # FC-CLIP's PAS-20: PAS-21 without background
        expected = expected[1:]
    ours = fcclip_vocabulary(name)
    assert [tuple(c) for c in ours] == expected
    # dataset:NAME holds the same classes (Cityscapes in things-first order)
    builtin = parse_vocabulary(f'dataset:{name}').classes
    assert sorted(builtin) == sorted(expected)
    if name != 'cityscapes':
        assert list(builtin) == expected


@needs_reference
def test_source_table_matches_fcclip_rule_and_our_loader():
    """SOURCE.md's counts, FC-CLIP's loader rule and ``--vocab FILE`` agree on every list."""
    with open(osp.join(REFERENCE, 'SOURCE.md'), encoding='utf-8') as f:
        rows = re.findall(r'^\|\s*(\w+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|$', f.read(),
                          re.M)
    table = {stem: tuple(int(v) for v in vals) for stem, *vals in rows}
    assert table == {stem: (size, seen, rep) for stem, size, seen, rep in SETS.values()}
    coco = _fcclip_rule(_reference_file('coco_panoptic'), False)
    train_names = {n for c in coco for n in c}
    coco_file = parse_vocabulary(_reference_file('coco_panoptic'))
    for stem, (size, seen, repeats) in table.items():
        path = _reference_file(stem)
        fcclip = _fcclip_rule(path, stem in ('cityscapes', 'pascal_voc_21'))
        assert len(fcclip) == size
        assert sum(not train_names.isdisjoint(c) for c in fcclip) == seen  # FC-CLIP's rule
        assert sum(len(set(c)) != len(c) for c in fcclip) == repeats
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            vocab = parse_vocabulary(path)  # FC-CLIP's format as a vocabulary file
        assert len([w for w in caught if 'the repeat is dropped' in str(w.message)]) == \
            sum(len(c) - len(set(c)) for c in fcclip)
        assert [tuple(c) for c in vocab.classes] == [_dedupe(c) for c in fcclip]
        assert sum(seen_mask(vocab, coco_file)) == seen  # our rule on FC-CLIP's names


def test_fcclip_file_format(tmp_path):
    path = tmp_path / 'classes.txt'
    path.write_text('0:invalid_class_id\n1:wall,walls\n2:stove, kitchen stove,kitchen stove\n'
                    '3:invalid_class_id\n4:bag\n5:bag,handbag\n')
    with pytest.warns(UserWarning, match="'kitchen stove' twice: the repeat is dropped"):
        vocab = parse_vocabulary(str(path))
    # names shared by two classes are kept (FC-CLIP's ADE20K-847 has three called 'bag')
    assert vocab.classes == (('wall', 'walls'), ('stove', 'kitchen stove'), ('bag',),
                             ('bag', 'handbag'))
    # a real class at id 0 (Cityscapes' road, VOC's background) is kept
    path.write_text('0:road,railroad\n1:sidewalk\n')
    assert parse_vocabulary(str(path)).classes == (('road', 'railroad'), ('sidewalk',))
    path.write_text('0:invalid_class_id\n1:\n')
    with pytest.raises(VocabularyError, match='class 1 has no name'):
        parse_vocabulary(str(path))


def test_repeats_within_a_class_warn_and_across_typed_classes_fail():
    with pytest.warns(UserWarning, match='the repeat is dropped'):
        vocab = parse_vocabulary('stove, kitchen range, Kitchen_Range; oven')
    assert vocab.classes == (('stove', 'kitchen range'), ('oven',))
    with pytest.raises(VocabularyError, match='classes 1 and 2'):
        parse_vocabulary('bag; bag, handbag')


def test_seen_rule_is_fcclip_names_not_canonical_forms():
    """A test class is seen when one of its names is a training name (case, '_' and spaces
    aside); COCO's raw 'wall-other-merged' is not ADE's 'wall'."""
    assert seen_mask([('wall', 'walls'), ('Traffic_Light',), ('palm tree',)],
                     [('wall-other-merged',), ('traffic light',), ('tree', 'trees')]) == \
        [False, True, False]
    train = parse_vocabulary('dataset:coco_panoptic')
    ade = parse_vocabulary('dataset:ade150')
    seen = dict(zip(ade.names, seen_mask(ade, train)))
    assert seen['wall'] and seen['person'] and not seen['skyscraper']


def test_package_files_are_plain_vocabulary_files():
    """The package's own files load with --vocab as they are (no FC-CLIP ids)."""
    from vitamin_dense.datasets.class_names import FCCLIP_SETS, VOCABULARY_DIR
    for name in FCCLIP_SETS:
        path = osp.join(VOCABULARY_DIR, f'{name}.txt')
        with open(path, encoding='utf-8') as f:
            lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith('#')]
        assert not any(re.match(r'^\d+:', ln) for ln in lines), name
        vocab = parse_vocabulary(path)
        assert vocab.classes == fcclip_vocabulary(name)
        for names in vocab.classes:  # no repeat left inside a class
            assert len({normalize_name(n) for n in names}) == len(names)
    assert os.path.basename(VOCABULARY_DIR) == 'vocabularies'
