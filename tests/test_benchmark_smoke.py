"""tools/benchmark.py: the dispatcher and a seconds-long backbone benchmark."""
import importlib.util
import json
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', os.path.join(REPO, 'tools', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_subcommands_are_discovered(bench, capsys):
    modules = bench.discover()
    assert 'backbone' in modules
    assert all(hasattr(m, 'add_arguments') and hasattr(m, 'run') for m in modules.values())
    with pytest.raises(SystemExit) as info:
        bench.main(['nonsense'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: argument') and err.count('\n') == 1


def test_backbone_benchmark_prints_figures(bench, capsys, tmp_path):
    out_json = tmp_path / 'bench.json'
    code = bench.main(['backbone', '--variants', 'ViTamin-Tiny', '--size', '128x192',
                       '--repeats', '1', '--warmup', '0', '--large-size', '256',
                       '--in-process', '--json', str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith('ViTamin-Tiny')]
    assert len(rows) == 2 and 'batched' in rows[0] and 'loop' in rows[1]
    batched = rows[0].split()
    assert batched[4] == '6'                    # 2 x 3 windows of 64 px at stride 64
    assert re.search(r'\d+\.\d+x', rows[0])     # speed-up against the loop
    assert 'Bounded memory: ViTamin-Tiny on a 256x256 image, 16 windows' in text
    results = json.loads(out_json.read_text())
    assert [r['mode'] for r in results] == ['batched', 'loop', 'batched']
    for r in results:
        assert r['images_per_s'] > 0 and r['windows_per_s'] > 0
        assert r['peak_extra_mb'] >= 0 and r['output_mb'] > 0
    assert results[1]['chunk'] == 1 and results[0]['chunk'] > 1


def test_isolated_worker_measures_in_a_fresh_process(bench, capsys):
    code = bench.main(['backbone', '--variants', 'ViTamin-Tiny', '--size', '64', '--modes',
                       'batched', '--repeats', '1', '--warmup', '0', '--large-size', 'none'])
    assert code == 0
    text = capsys.readouterr().out
    assert 'each row measured in a fresh process' in text
    assert re.search(r'ViTamin-Tiny\s+64\s+64\s+batched\s+1\s', text)


def test_bad_options_are_config_errors(bench):
    from vitamin_dense.errors import ConfigError
    with pytest.raises(ConfigError, match='unknown ViTamin model'):
        bench.main(['backbone', '--variants', 'ViTamin-Q', '--in-process'])
    with pytest.raises(ConfigError, match='--modes'):
        bench.main(['backbone', '--modes', 'fast', '--in-process'])
    with pytest.raises(ConfigError, match='bad size'):
        bench.main(['backbone', '--variants', 'ViTamin-Tiny', '--size', '12x', '--in-process'])


def test_finetune_benchmark_prints_figures(bench, capsys, one_thread):
    code = bench.main(['finetune', '--variant', 'ViTamin-Tiny', '--size', '128x192',
                       '--modes', 'none,chunk', '--budget-mb', '8', '--in-process'])
    assert code == 0
    text = capsys.readouterr().out
    assert 'Fine-tuning step (forward, backward, AdamW): ViTamin-Tiny, 1 x 128x192' in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.split() and line.split()[0] in ('none', 'chunk')}
    assert rows['none'][1] == rows['chunk'][1] == '6'        # 2 x 3 windows of 64 px
    assert int(rows['chunk'][2]) < int(rows['none'][2])      # smaller chunks with gradients
