"""The real data sets' loaders on tiny fake copies of their layouts: labels land in
mmdet's order (things first) whatever the file's category order, metainfo carries
synonyms, wide (uint16) labels survive, missing files give one clear line, and every
base data set config builds its evaluator while its data set reports the missing files."""
import json
import os
import os.path as osp
import runpy
import sys

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from vitamin_dense.datasets import (ADE20K847Dataset, CityscapesPanopticDataset, DatasetError,
                                    MapillaryPanopticDataset, OpenVocabADE20KDataset,
                                    OpenVocabADE20KPanopticDataset, OpenVocabCocoPanopticDataset,
                                    OpenVocabPascalContext59Dataset, OpenVocabPascalVOCDataset,
                                    PascalContext459Dataset, PascalVOC20Dataset)
from vitamin_dense.datasets.class_names import (cityscapes_meta, coco_panoptic_meta,
                                                mapillary_meta, read_class_file)
from vitamin_dense.registry import DATASETS, METRICS
from vitamin_dense.text import parse_vocabulary

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAN_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='mmdet.LoadPanopticAnnotations'),
                dict(type='mmdet.PackDetInputs')]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('vitamin_dense')


def _id2rgb(ids):
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def write_panoptic(root, ann_file, img_dir, seg_dir, categories, stuff_name, thing_name,
                   images=(('a.jpg', 'a.png'),), city=False, drop=()):
    """Each image: left half = stuff_name, a 8x8 square = thing_name, rest void."""
    os.makedirs(osp.join(root, seg_dir), exist_ok=True)
    cat_id = {c['name']: c['id'] for c in categories}
    out_images, anns = [], []
    for k, (img_name, seg_name) in enumerate(images):
        folder = osp.join(root, img_dir, img_name.split('_')[0] if city else '')
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(osp.join(folder, img_name), np.full((32, 32, 3), 100 + k, np.uint8))
        ids = np.zeros((32, 32), np.int64)
        ids[:, :16] = 5
        ids[4:12, 20:28] = 7
        cv2.imwrite(osp.join(root, seg_dir, seg_name), _id2rgb(ids)[..., ::-1])
        out_images.append(dict(id=k, file_name=img_name, height=32, width=32))
        anns.append(dict(image_id=k, file_name=seg_name, segments_info=[
            dict(id=5, category_id=cat_id[stuff_name], iscrowd=0, bbox=[0, 0, 16, 32], area=512),
            dict(id=7, category_id=cat_id[thing_name], iscrowd=0, bbox=[20, 4, 8, 8], area=64)]))
    cats = [c for c in categories if c['name'] not in drop]
    with open(osp.join(root, ann_file), 'w') as f:
        json.dump(dict(images=out_images, annotations=anns, categories=cats), f)


def meta_categories(meta, reverse=False, first_id=1):
    things = set(meta.get('thing_classes', ()))
    cats = [dict(id=first_id + i, name=n, isthing=int(n in things))
            for i, n in enumerate(meta['classes'])]
    return cats[::-1] if reverse else cats


def check_labels(dataset, stuff_name, thing_name):
    classes = dataset.metainfo['classes']
    sample = dataset[0]['data_samples']
    sem = sample.gt_sem_seg.sem_seg[0].numpy()
    assert sem[0, 0] == classes.index(stuff_name)
    assert sem[6, 22] == classes.index(thing_name) < len(dataset.metainfo['thing_classes'])
    assert sem[20, 20] == 255
    assert sample.gt_instances.labels.tolist() == [classes.index(thing_name)]
    # the names the model prompts with: FC-CLIP's for these sets, one entry per class
    assert len(dataset.metainfo['vocabulary']) == len(classes)


def test_coco_panoptic_matches_categories_by_name(tmp_path):
    root = str(tmp_path)
    os.makedirs(osp.join(root, 'annotations'))
    # categories written in reverse order: labels must still follow mmdet's class order
    write_panoptic(root, 'annotations/panoptic_val2017.json', 'val2017',
                   'annotations/panoptic_val2017', meta_categories(coco_panoptic_meta(), True),
                   'wall-other-merged', 'person')
    ds = OpenVocabCocoPanopticDataset(data_root=root, pipeline=PAN_PIPELINE, test_mode=True)
    check_labels(ds, 'wall-other-merged', 'person')
    assert ds.metainfo['vocabulary'][0][:2] == ('person', 'child')  # FC-CLIP's names
    assert ds.metainfo['vocabulary'][-2] == ('wall', 'walls')  # 'wall-other-merged'
    assert ds.metainfo['vocabulary'] == parse_vocabulary('dataset:coco_panoptic').classes


def test_missing_category_is_a_clear_error(tmp_path):
    root = str(tmp_path)
    os.makedirs(osp.join(root, 'annotations'))
    write_panoptic(root, 'annotations/panoptic_val2017.json', 'val2017',
                   'annotations/panoptic_val2017', meta_categories(coco_panoptic_meta()),
                   'sky-other-merged', 'person', drop=('toaster',))
    with pytest.raises(DatasetError, match="no category named 'toaster'"):
        OpenVocabCocoPanopticDataset(data_root=root, test_mode=True)


def test_cityscapes_panoptic_layout_and_order(tmp_path):
    root = str(tmp_path)
    os.makedirs(osp.join(root, 'gtFine'))
    seg_order = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                 'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
                 'truck', 'bus', 'train', 'motorcycle', 'bicycle')  # label-id order of the file
    things = set(cityscapes_meta()['thing_classes'])
    cats = [dict(id=7 + i, name=n, isthing=int(n in things)) for i, n in enumerate(seg_order)]
    write_panoptic(root, 'gtFine/cityscapes_panoptic_val.json', 'leftImg8bit/val',
                   'gtFine/cityscapes_panoptic_val', cats, 'road', 'car',
                   images=(('frankfurt_000000_000294_leftImg8bit.png',
                            'frankfurt_000000_000294_gtFine_panoptic.png'),), city=True)
    ds = CityscapesPanopticDataset(data_root=root, pipeline=PAN_PIPELINE, test_mode=True)
    assert ds.metainfo['classes'][:8] == cityscapes_meta()['thing_classes']
    check_labels(ds, 'road', 'car')
    assert ds.metainfo['vocabulary'] == parse_vocabulary('dataset:cityscapes').classes
    assert ds.metainfo['vocabulary'][0][0] == 'person'
    assert ds[0]['data_samples'].img_path.endswith(
        'leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png')


def test_mapillary_things_from_the_file(tmp_path):
    root = str(tmp_path)
    os.makedirs(osp.join(root, 'validation/panoptic'))
    names = mapillary_meta()['classes']
    cats = [dict(id=i + 1, name=n, isthing=int(n in ('Car', 'Person', 'Bus')))
            for i, n in enumerate(names)] + [dict(id=66, name='Unlabeled', isthing=0)]
    write_panoptic(root, 'validation/panoptic/panoptic_2018.json', 'validation/images',
                   'validation/panoptic', cats, 'Road', 'Bus')
    ds = MapillaryPanopticDataset(data_root=root, pipeline=PAN_PIPELINE, test_mode=True)
    assert set(ds.metainfo['thing_classes']) == {'Car', 'Person', 'Bus'}
    assert len(ds.metainfo['classes']) == 65
    check_labels(ds, 'Road', 'Bus')


def test_ade20k_panoptic(tmp_path):
    from mmdet.datasets import ADE20KPanopticDataset
    root = str(tmp_path)
    write_panoptic(root, 'ade20k_panoptic_val.json', 'images/validation', 'ade20k_panoptic_val',
                   meta_categories(dict(ADE20KPanopticDataset.METAINFO)), 'sky',
                   'painting, picture')
    ds = OpenVocabADE20KPanopticDataset(data_root=root, pipeline=PAN_PIPELINE, test_mode=True)
    check_labels(ds, 'sky', 'painting, picture')
    from vitamin_dense.datasets.class_names import ade150_panoptic_order
    ade150 = parse_vocabulary('dataset:ade150').classes  # labels: the 100 things first
    assert ds.metainfo['vocabulary'] == tuple(ade150[i] for i in ade150_panoptic_order())
    assert ds.metainfo['vocabulary'][9][:2] == ('painting', 'picture')


# -- semantic ---------------------------------------------------------------
def write_semantic(root, img_dir, seg_dir, stem, labels, seg_suffix='.png', img_suffix='.jpg'):
    os.makedirs(osp.join(root, img_dir), exist_ok=True)
    os.makedirs(osp.join(root, seg_dir), exist_ok=True)
    cv2.imwrite(osp.join(root, img_dir, stem + img_suffix), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(osp.join(root, seg_dir, stem + seg_suffix), labels)


SEM_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='mmseg.LoadAnnotations'),
                dict(type='mmseg.PackSegInputs')]
WIDE_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadWideSemSegAnnotations'),
                 dict(type='mmseg.PackSegInputs')]


def gt(ds):
    return ds[0]['data_samples'].gt_sem_seg.data[0].numpy()


def test_ade150_and_voc(tmp_path):
    labels = np.array([[0, 1, 150, 13]] * 2, np.uint8)
    write_semantic(str(tmp_path / 'ade'), 'images/validation', 'annotations/validation', 'x',
                   labels)
    ade = OpenVocabADE20KDataset(data_root=str(tmp_path / 'ade'), pipeline=SEM_PIPELINE,
                                 test_mode=True)
    assert gt(ade)[0].tolist() == [255, 0, 149, 12]
    assert len(ade.metainfo['classes']) == 150 and ade.metainfo['vocabulary'][12][0] == 'person'
    assert ade.metainfo['vocabulary'] == parse_vocabulary('dataset:ade150').classes

    voc = str(tmp_path / 'voc')
    write_semantic(voc, 'JPEGImages', 'SegmentationClass', 'y',
                   np.array([[0, 1, 20, 255]] * 2, np.uint8))
    os.makedirs(osp.join(voc, 'ImageSets/Segmentation'))
    with open(osp.join(voc, 'ImageSets/Segmentation/val.txt'), 'w') as f:
        f.write('y\n')
    v21 = OpenVocabPascalVOCDataset(data_root=voc, pipeline=SEM_PIPELINE, test_mode=True)
    v20 = PascalVOC20Dataset(data_root=voc, pipeline=SEM_PIPELINE, test_mode=True)
    assert gt(v21)[0].tolist() == [0, 1, 20, 255]
    assert gt(v20)[0].tolist() == [255, 0, 19, 255]
    assert v20.metainfo['classes'] == v21.metainfo['classes'][1:]
    assert v20.metainfo['vocabulary'] == v21.metainfo['vocabulary'][1:]
    assert v21.metainfo['vocabulary'][0][0] == 'background'


def test_pascal_context_59(tmp_path):
    root = str(tmp_path)
    write_semantic(root, 'JPEGImages', 'SegmentationClassContext', 'z',
                   np.array([[0, 1, 59, 5]] * 2, np.uint8))
    os.makedirs(osp.join(root, 'ImageSets/SegmentationContext'))
    with open(osp.join(root, 'ImageSets/SegmentationContext/val.txt'), 'w') as f:
        f.write('z\n')
    ds = OpenVocabPascalContext59Dataset(data_root=root, pipeline=SEM_PIPELINE, test_mode=True)
    assert gt(ds)[0].tolist() == [255, 0, 58, 4]


def test_wide_label_sets_and_class_files(tmp_path, monkeypatch, capsys):
    # ADE20K-847: class names extracted from a (fake) preparation script, uint16 labels
    script = tmp_path / 'prepare_full.py'
    cats = [dict(name=f'thing{i}, synonym{i}', id=1000 + i, trainId=846 - i) for i in range(847)]
    script.write_text(f'import os\nCATEGORIES = {cats!r}\n\nif __name__ == "__main__":\n'
                      '    raise SystemExit("never run")\n')
    root = str(tmp_path / 'ADE20K_2021_17_01')
    labels = np.array([[0, 300, 846, 65535]] * 2, np.uint16)
    write_semantic(root, 'images_detectron2/validation', 'annotations_detectron2/validation',
                   'ADE_val_1', labels, seg_suffix='.tif')
    monkeypatch.setattr(sys, 'argv', ['extract_class_names.py', str(script),
                                      osp.join(root, 'ade847_classes.txt'), '--expect', '847'])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(osp.join(REPO, 'tools/extract_class_names.py'), run_name='__main__')
    assert info.value.code == 0
    ds = ADE20K847Dataset(data_root=root, pipeline=WIDE_PIPELINE, test_mode=True,
                          classes_file='ade847_classes.txt')
    assert ds.metainfo['classes'][0] == 'thing846, synonym846'  # train id 0
    assert ds.metainfo['synonyms'][0] == ('thing846', 'synonym846')
    assert 'vocabulary' not in ds.metainfo  # a class file replaces FC-CLIP's names
    values = gt(ds)
    assert values.dtype == np.int64 and values[0].tolist() == [0, 300, 846, 65535]
    # by default FC-CLIP's names, in the train-id order of its preparation script
    ds = ADE20K847Dataset(data_root=root, pipeline=WIDE_PIPELINE, test_mode=True)
    assert ds.metainfo['vocabulary'] == parse_vocabulary('dataset:ade847').classes
    assert ds.metainfo['classes'][0] == 'wall' and len(ds.metainfo['classes']) == 847

    # PC-459: Pascal Context's own labels.txt ("<id>: <name>")
    voc = tmp_path / 'VOCdevkit' / 'VOC2010'
    voc.mkdir(parents=True)
    (voc / 'labels.txt').write_text(''.join(f'{i}: class{i}\n' for i in range(1, 460)))
    root = str(tmp_path / 'pascal_ctx_d2')
    write_semantic(root, 'images/validation', 'annotations_ctx459/validation', '2008_000001',
                   np.array([[0, 458, 65535, 7]] * 2, np.uint16), seg_suffix='.tif')
    ds = PascalContext459Dataset(data_root=root, pipeline=WIDE_PIPELINE, test_mode=True,
                                 classes_file='../VOCdevkit/VOC2010/labels.txt')
    assert ds.metainfo['classes'][:2] == ('class1', 'class2') and len(ds.metainfo['classes']) == 459
    assert gt(ds)[0].tolist() == [0, 458, 65535, 7]
    assert read_class_file(str(voc / 'labels.txt'))[458] == 'class459'
    ds = PascalContext459Dataset(data_root=root, pipeline=WIDE_PIPELINE, test_mode=True)
    assert ds.metainfo['classes'][:2] == ('accordion', 'aeroplane')
    assert ds.metainfo['vocabulary'] == parse_vocabulary('dataset:pc459').classes


@pytest.mark.parametrize('cls', [OpenVocabCocoPanopticDataset, OpenVocabADE20KPanopticDataset,
                                 CityscapesPanopticDataset, MapillaryPanopticDataset,
                                 OpenVocabADE20KDataset, ADE20K847Dataset,
                                 OpenVocabPascalContext59Dataset, PascalContext459Dataset,
                                 OpenVocabPascalVOCDataset, PascalVOC20Dataset])
def test_missing_files_name_file_and_layout(cls, tmp_path):
    with pytest.raises(DatasetError) as info:
        cls(data_root=str(tmp_path / 'nowhere'), test_mode=True)
    message = str(info.value)
    assert 'missing' in message and 'expected layout' in message and '\n' not in message
    assert 'does not exist' in message


def test_builtin_vocabularies():
    for name, size in (('coco_panoptic', 133), ('ade150', 150), ('ade847', 847),
                       ('cityscapes', 19), ('mapillary', 65), ('pc59', 59), ('pc459', 459),
                       ('voc20', 20), ('voc21', 21), ('synthetic', 11)):
        assert len(parse_vocabulary(f'dataset:{name}')) == size
    # FC-CLIP's names, matched to each data set's own class list
    from vitamin_dense.datasets.class_names import (ade150_panoptic_meta, ade150_panoptic_order,
                                                    ade150_semantic_meta,
                                                    cityscapes_things_first, vocabulary_for)
    assert vocabulary_for('cityscapes', cityscapes_meta()['classes']) == cityscapes_things_first()
    ade150 = parse_vocabulary('dataset:ade150').classes
    assert vocabulary_for('ade150', ade150_semantic_meta()['classes']) == ade150
    assert vocabulary_for('ade150', ade150_panoptic_meta()['classes']) == \
        tuple(ade150[i] for i in ade150_panoptic_order())
    assert vocabulary_for('mapillary', mapillary_meta()['classes']) == \
        parse_vocabulary('dataset:mapillary').classes
    assert vocabulary_for('ade150', ['wall', 'no such class']) is None


CONFIGS = ['coco_panoptic', 'ade20k_panoptic', 'cityscapes_panoptic', 'mapillary_panoptic',
           'ade20k_150', 'ade20k_847', 'cityscapes_semantic', 'pascal_context_59',
           'pascal_context_459', 'pascal_voc_20', 'pascal_voc_21']


@pytest.mark.parametrize('name', CONFIGS)
def test_base_configs_parse_and_build_metrics(name, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, f'configs/_base_/datasets/{name}.py'))
    dataset = cfg.val_dataloader.dataset
    assert DATASETS.get(dataset.type) is not None
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    for ev in evaluators:
        METRICS.build(ev)
    # the data set reports its own missing files against the config's data_root
    dataset.data_root = str(tmp_path / 'absent') + '/'
    with pytest.raises(DatasetError, match='expected layout'):
        DATASETS.build(dataset)
