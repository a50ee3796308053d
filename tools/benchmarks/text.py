"""Text encoding: cold time of a vocabulary, trimmed context against the full one, cache hits.

The vocabulary (default 'dataset:lvis': 1,203 classes with their synonyms;
--classes N keeps the first N) is encoded with --templates (default the 14
ViLD templates) by the text tower of --model (random weights: speed does not
depend on them):

  cold            every prompt through the text tower, each chunk on a context
                  trimmed to its longest prompt (the default);
  full context    the same with every prompt padded to 77 tokens (--compare;
                  what encoding did before), side by side in the same process,
                  with the largest difference of the embeddings;
  memory hit      the same vocabulary again (best of 20 calls);
  disk hit        the same vocabulary read back from the on-disk cache.

example:  python tools/benchmark.py text --model ViTamin-S --classes 128 --compare --threads 1
"""
from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any, Dict

import torch

from ._common import (add_run_arguments, device_name, now, run_measurements,
                      worker_device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default='ViTamin-L-336',
                        help='open_clip name whose text tower encodes (default: %(default)s)')
    parser.add_argument('--vocabulary', default='dataset:lvis',
                        help='any --vocab form (default: %(default)s)')
    parser.add_argument('--classes', type=int, default=None,
                        help='keep only the first N classes (default: all)')
    parser.add_argument('--templates', default='vild', help='template set (default: vild, 14)')
    parser.add_argument('--compare', action='store_true',
                        help='also encode with the full 77-token context (slow)')
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    from vitamin_dense.errors import ConfigError
    if args.classes is not None and args.classes < 1:
        raise ConfigError('--classes must be at least 1')
    spec = dict(model=args.model, vocabulary=args.vocabulary, classes=args.classes,
                templates=args.templates, compare=args.compare, device=args.device,
                threads=args.threads)
    results = run_measurements('text', [spec], measure,
                               lambda s: f"text encoding ({s['model']})", args)
    print(report(results[0]))
    return 0


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    from vitamin_dense.text import TextClassifier, Vocabulary, parse_vocabulary
    device = worker_device(spec)
    vocab = parse_vocabulary(spec['vocabulary'])
    if spec.get('classes'):
        vocab = Vocabulary(vocab.classes[:int(spec['classes'])])
    with tempfile.TemporaryDirectory() as cache:
        tc = TextClassifier(spec['model'], None, templates=spec['templates'], disk_cache=cache,
                            progress=False).to(device)
        tc.disk_cache_dir = cache  # random weights never write the disk cache; measure it anyway
        prompts = sum(len(c) for c in vocab.classes) * len(tc.templates)
        times: Dict[str, float] = {}
        start = now()
        emb = tc.encode(vocab)
        times['cold'] = now() - start
        best = float('inf')
        for _ in range(20):
            start = now()
            tc.encode(vocab)
            best = min(best, now() - start)
        times['memory_hit'] = best
        tc._memory_cache.clear()
        start = now()
        tc.encode(vocab)
        times['disk_hit'] = now() - start
        diff = None
        if spec.get('compare'):
            names = [n for synonyms in vocab.classes for n in synonyms]
            texts = [t.format(n) for n in names for t in tc.templates]
            start = now()
            trimmed = tc.encode_prompts(texts)
            times['trimmed_prompts'] = now() - start
            start = now()
            full = tc.encode_prompts(texts, trim=False)
            times['full_prompts'] = now() - start
            diff = float((trimmed - full).abs().max())
    return {'model': spec['model'], 'classes': len(vocab), 'prompts': prompts,
            'templates': len(tc.templates), 'vocabulary': spec['vocabulary'],
            'embedding_shape': list(emb.shape), 'seconds': times, 'max_diff': diff,
            'device': device_name(device)}


def report(r: Dict[str, Any]) -> str:
    t = r['seconds']
    vocab = r['vocabulary'] if len(r['vocabulary']) <= 40 else r['vocabulary'][:37] + '...'
    lines = [f"Text encoding, {r['model']} text tower (random weights), {vocab}: "
             f"{r['classes']} classes, {r['prompts']} prompts ({r['templates']} templates), "
             f"device: {r['device']}",
             f"  cold (trimmed context): {t['cold']:.2f} s",
             f"  memory-cache hit: {t['memory_hit'] * 1e3:.2f} ms",
             f"  disk-cache hit: {t['disk_hit'] * 1e3:.1f} ms"]
    if 'full_prompts' in t:
        lines.append(f"  side by side, all prompts: trimmed {t['trimmed_prompts']:.2f} s, full "
                     f"77-token context {t['full_prompts']:.2f} s "
                     f"({t['full_prompts'] / t['trimmed_prompts']:.1f}x faster trimmed); "
                     f"embeddings differ by at most {r['max_diff']:.1e}")
    return '\n'.join(lines)
