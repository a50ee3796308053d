"""Seen / unseen classes by name overlap (FC-CLIP's rule); canonical display names."""
from vitamin_dense.text import Vocabulary, canonical_class_name, seen_mask


def test_canonical_names():
    assert canonical_class_name('wall-other-merged') == 'wall'
    assert canonical_class_name('door-stuff') == 'door'
    assert canonical_class_name('Traffic_Light') == 'traffic light'
    assert canonical_class_name('  sky-other-merged ') == 'sky'
    assert canonical_class_name('other') == 'other'  # a lone suffix word stays


def test_seen_mask_uses_every_synonym():
    """FC-CLIP's rule: seen when a name (case, '_' and spaces aside) is a training name;
    raw COCO names ('wall-other-merged') match only themselves."""
    train = ['person', 'wall-other-merged', ('couch', 'sofa'), ('tree', 'trees'), 'Traffic Light']
    evals = [('people', 'person'), 'wall', 'sofa, lounge', 'palm, palm tree', 'trees',
             'zebra crossing', 'traffic_light', 'wall-other-merged']
    assert seen_mask(evals, train) == [True, False, True, False, True, False, True, True]


def test_seen_mask_accepts_vocabulary_objects():
    train = Vocabulary((('cat', 'kitten'),))
    evals = Vocabulary((('kitten',), ('dog',)))
    assert seen_mask(evals, train) == [True, False]
    assert seen_mask([], train) == []
