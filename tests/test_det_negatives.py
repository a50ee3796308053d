"""Pseudo-negatives by meaning, and the federated loss's random negatives.

OV-COCO draws pseudo-negative names from LVIS. Names that name a COCO object under
another word (sofa for couch, kitten for cat, mug for cup) must never be negatives:
novel objects in base images would be trained down, base boxes get two targets.
"""
import pytest
import torch

from tests.helpers.det import build_tiny_detector
from vitamin_dense.datasets.ov_splits import OV_COCO_BASE_CLASSES, OV_COCO_NOVEL_CLASSES
from vitamin_dense.models.owl import federated_query_mask
from vitamin_dense.models.owl.negatives import bundled_meaning, lvis_categories
from vitamin_dense.text import parse_vocabulary

# the names of issue 10 that name OV-COCO novel objects, then base ones
NOVEL_SYNONYMS = ('sofa', 'loveseat', 'necktie', 'kitten', 'puppy', 'bulldog', 'dalmatian',
                  'jet_plane', 'fighter_jet', 'seaplane', 'calf', 'bull', 'ox', 'cupcake',
                  'teacup', 'mug', 'pocketknife', 'shears', 'parasol', 'washbasin')
BASE_SYNONYMS = ('doughnut', 'television_set', 'armchair', 'baby', 'pony')
OV_COCO = ','.join(OV_COCO_BASE_CLASSES + OV_COCO_NOVEL_CLASSES)


def _pool(meaning='wordnet', extra=NOVEL_SYNONYMS + BASE_SYNONYMS):
    names = [c['name'] for c in lvis_categories()]
    names += [n for n in extra if n not in names]
    det = build_tiny_detector(vocabulary=OV_COCO, train_classes=list(OV_COCO_BASE_CLASSES),
                              negative_vocabulary=','.join(names), num_negatives=32,
                              negative_meaning=meaning)
    return det, {n for syn in det.negative_pool().classes for n in syn}


def test_no_synonym_hyponym_or_young_of_an_ov_coco_class_is_a_negative():
    det, pool = _pool()
    assert not pool & set(NOVEL_SYNONYMS)
    assert not pool & set(BASE_SYNONYMS)
    # what stays is plenty and unrelated
    assert len(pool) > 900
    assert {'aerosol_can', 'zucchini', 'lamp'} <= pool
    # and the sampled negatives of a step come from that pool only
    for _ in range(5):
        assert not {n for syn in det.sample_negatives() for n in syn} & set(NOVEL_SYNONYMS)


def test_words_alone_let_them_through():
    """Today's rule (shared words) misses names of the same object in other words."""
    _, pool = _pool(meaning=None)
    assert {'sofa', 'kitten', 'mug', 'parasol', 'doughnut', 'armchair'} <= pool


def test_the_meaning_rules():
    meaning = bundled_meaning()
    assert 'dog.n.01' in meaning.ancestors('dalmatian.n.02')
    assert meaning.synsets_of(['couch']) >= {'sofa.n.01'}
    assert meaning.synsets_of(['baby']) >= {'person.n.01'}  # an LVIS synonym of person
    # a more general name of a vocabulary object is dropped too (a bowl is a dish)
    _, pool = _pool(extra=())
    assert 'dish' not in pool and 'bowl' not in pool


def test_extra_knowledge_for_other_vocabularies():
    det = build_tiny_detector(vocabulary='circle,square,triangle,star', negative_vocabulary=(
        'pentagram,asterisk,hexagon,arrow'), num_negatives=2,
        negative_meaning=dict(synsets={'star': 'star.n.05', 'pentagram': 'pentacle.n.01'},
                              hypernyms={'pentacle.n.01': ['star.n.05']},
                              synonyms={'star': ['asterisk']}))
    assert det.negative_pool().names == ['hexagon', 'arrow']
    with pytest.raises(Exception, match='negative_meaning'):
        build_tiny_detector(negative_meaning=dict(synset={}))


# --------------------------------------------------------------------- federated
def _lvis_like(num_classes=120, num_base=100):
    names = [f'thing{i}' for i in range(num_classes)]
    det = build_tiny_detector(vocabulary=','.join(names), federated_loss=True)
    counts = [0] * 10 + [5 + i for i in range(num_classes - 10)]  # ten classes never seen
    det.set_dataset_vocabulary(dict(classes=names, class_subset='base',
                                    base_labels=list(range(num_base)), image_counts=counts),
                               'train')
    return det


class _Sample:
    def __init__(self, labels, neg, not_exhaustive=()):
        from mmengine.structures import InstanceData
        self.metainfo = dict(img_shape=(64, 64), neg_labels=neg,
                             not_exhaustive_labels=list(not_exhaustive))
        self.gt_instances = InstanceData(
            bboxes=torch.tensor([[4., 4., 30., 30.]] * len(labels)).reshape(-1, 4),
            labels=torch.tensor(labels, dtype=torch.long))


def test_every_federated_image_covers_at_least_50_queries():
    det = _lvis_like().train()
    seen = {}

    def spy(outputs, gt_boxes, gt_labels, query_mask=None):
        seen.update(mask=query_mask, labels=gt_labels)
        return {'loss': outputs['logits'].sum() * 0}

    det.criterion = spy
    samples = [_Sample([12, 40], [13, 14, 101], not_exhaustive=[50, 51]),  # 101: a novel class
               _Sample([60], [i for i in range(20, 82) if i != 60]),   # 61 verified negatives
               _Sample([], [])]
    with torch.no_grad():
        det.loss(torch.randn(3, 3, 64, 64), samples)
    mask = seen['mask']
    assert mask.shape == (3, 100)  # only base classes are queries
    assert (mask.sum(1) >= 50).all()
    assert mask[0, [12, 40, 13, 14]].all() and not mask[0, [50, 51]].any()
    assert mask[0].sum() == 2 + 50  # its positives, and 50 negatives in total
    assert mask[1].sum() == 1 + 61  # more verified negatives than 50: all kept, none added
    assert not mask[:, :10].any()  # classes without images are never drawn
    assert seen['labels'][0].tolist() == [12, 40]


def test_federated_draws_follow_the_weights():
    weights = torch.zeros(100)
    weights[50:] = 1.0
    mask = federated_query_mask([torch.tensor([0])], [[1, 2]], [[]], 100, 100, 50, weights,
                                torch.Generator().manual_seed(0))
    assert mask[0, [0, 1, 2]].all() and mask[0, 50:].sum() == 48 and not mask[0, 3:50].any()
    # no federated information: every query counts
    assert federated_query_mask([torch.tensor([0])], [None], [[]], 10, 12).all()


def test_trainable_text_encodes_only_the_classes_a_batch_uses():
    names = [f'thing{i}' for i in range(120)]
    det = build_tiny_detector(vocabulary=','.join(names), federated_loss=True,
                              freeze_text=False).train()
    det.set_dataset_vocabulary(dict(classes=names, class_subset='base',
                                    base_labels=list(range(100))), 'train')
    asked = []
    real = det._text_queries.train_embeddings
    det._text_queries.train_embeddings = lambda classes, **kw: asked.append(classes) or \
        real(classes, **kw)
    det.criterion = lambda outputs, boxes, labels, query_mask=None: {
        'loss': outputs['logits'].sum()}
    loss = det.loss(torch.randn(1, 3, 64, 64), [_Sample([7], [8, 9])])['loss']
    assert len(asked[0]) == 51  # the positive and 50 negatives, not all 100 base classes
    loss.backward()
    assert det.text_encoder.text.token_embedding.weight.grad.abs().sum() > 0
