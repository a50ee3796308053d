"""Write a data set's class-name file from the preparation script that made its labels.

    python tools/extract_class_names.py PREPARE_SCRIPT OUT_FILE [--expect 847]

ADE20K-847's label files (``annotations_detectron2/*.tif``) hold train ids that
the preparation script chose (MaskFormer's / FC-CLIP's
``prepare_ade20k_full_sem_seg.py`` lists ``{"name": ..., "id": ..., "trainId": ...}``
for every kept class). This tool reads that list *without running the script*
(Python's ``ast``: literals only) and writes one class per line in train-id
order, synonyms comma-separated: the ``classes_file`` that ``ADE20K847Dataset``
and ``--vocab FILE`` read. Any script or module holding such a list works.
"""
from __future__ import annotations

import argparse
import ast
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from vitamin_dense.utils.cli import run_cli  # noqa: E402


def category_lists(source: str):
    """Every list literal of dicts with a ``name`` key in a Python source."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.List) or not node.elts:
            continue
        if not all(isinstance(e, ast.Dict) for e in node.elts):
            continue
        try:
            items = ast.literal_eval(node)
        except ValueError:
            continue
        if all(isinstance(i, dict) and isinstance(i.get('name'), str) for i in items):
            yield items


def class_names_from_script(path: str, expect: int = 0):
    from vitamin_dense.datasets.errors import DatasetError
    try:
        with open(path, encoding='utf-8') as f:
            source = f.read()
    except OSError as exc:
        raise DatasetError(f'cannot read {path}: {exc}') from exc
    try:
        lists = list(category_lists(source))
    except SyntaxError as exc:
        raise DatasetError(f'{path} is not Python source: {exc}') from exc
    if expect:
        lists = [items for items in lists if len(items) == expect]
    if not lists:
        extra = f' of {expect} entries' if expect else ''
        raise DatasetError(f'{path} has no list{extra} of {{"name": ...}} category dicts')
    items = max(lists, key=len)
    key = 'trainId' if all('trainId' in i for i in items) else \
        'id' if all('id' in i for i in items) else None
    if key is not None:
        items = sorted(items, key=lambda i: i[key])
        ids = [i[key] for i in items]
        if len(set(ids)) != len(ids):
            raise DatasetError(f'{path}: duplicated {key} values in the category list')
    return [i['name'].strip() for i in items]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('script', help='preparation script holding the category list')
    parser.add_argument('out', help='class-name file to write (one class per line)')
    parser.add_argument('--expect', type=int, default=0,
                        help='only a list of this many classes (e.g. 847)')
    args = parser.parse_args()
    names = class_names_from_script(args.script, args.expect)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(f'# class names in label order, from {osp.basename(args.script)}\n')
        f.write('\n'.join(names) + '\n')
    print(f'{len(names)} classes -> {args.out}')
    return 0


if __name__ == '__main__':
    run_cli(main)
