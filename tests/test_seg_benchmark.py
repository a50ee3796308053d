"""tools/benchmark.py segmentation: a seconds-long run prints inference and training figures."""
import importlib.util
import json
import os

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_segmentation_benchmark_prints_figures(capsys, tmp_path):
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', os.path.join(REPO, 'tools', 'benchmark.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert 'segmentation' in bench.discover()
    out_json = tmp_path / 'seg.json'
    threads = torch.get_num_threads()
    try:
        code = bench.main(['segmentation', '--variants', 'Tiny', '--size', '96x128',
                           '--num-classes', '5', '--repeats', '1', '--warmup', '0',
                           '--train-iters', '2', '--train-warmup', '1', '--threads', '1',
                           '--in-process', '--json', str(out_json)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    text = capsys.readouterr().out
    assert any(line.startswith('Tiny') and 'ViTamin-Tiny' in line for line in text.splitlines())
    assert 'it/s' in text
    results = json.loads(out_json.read_text())
    inference, train = results
    assert inference['windows'] == 6 and inference['queries'] == 16 and inference['classes'] == 5
    assert inference['images_per_s'] > 0 and train['iters'] == 2 and train['iters_per_s'] > 0


@pytest.mark.slow  # an end-to-end run in fresh processes (bash tools/run_tests.sh --all)
def test_breakdown_side_by_side_with_another_checkout(capsys, tmp_path):
    """--breakdown times every stage; --against measures a checkout (here this one) in
    alternating fresh processes with the same benchmark code."""
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', os.path.join(REPO, 'tools', 'benchmark.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out_json = tmp_path / 'seg.json'
    code = bench.main(['segmentation', '--variants', 'Tiny', '--size', '96', '--num-classes',
                       '3', '--repeats', '1', '--warmup', '0', '--train-iters', '0',
                       '--threads', '1', '--breakdown', '--against', REPO,
                       '--json', str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    (result,) = json.loads(out_json.read_text())
    assert result['against']['code'] == REPO and result['rounds'] == 1
    stages = {s['stage']: s for s in result['stages']}
    assert {'backbone', 'pixel decoder', 'deformable attention', 'sampling',
            'transformer decoder', 'mask prediction', 'post-processing'} <= set(stages)
    assert stages['sampling']['parent'] == 'deformable attention'
    assert stages['mask prediction']['calls'] > stages['transformer decoder']['calls'] == 1
    assert sum(s['seconds'] for s in result['stages'] if s['parent'] is None) <= \
        result['sec_per_image']
    assert 'Where the time goes: Tiny (ViTamin-Tiny), 96x96' in text
    assert 'backbone (4 windows at stride 32 + stitching)' in text and 'x baseline' in text
    assert 'sampling (gather)' in text
