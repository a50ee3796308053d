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


@pytest.mark.slow  # an end-to-end run in fresh processes (bash tools/run_tests.sh --all)
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


def test_backbone_modes_side_by_side_with_flops_and_shared_convolutions(bench, capsys, tmp_path):
    out_json = tmp_path / 'modes.json'
    code = bench.main(['backbone', '--variants', 'ViTamin-Tiny', '--size', '96x128',
                       '--strides', 'window,third', '--modes', 'batched,loop,budget,2,shared',
                       '--repeats', '1', '--warmup', '0', '--large-size', 'none', '--flops',
                       '--matmul', '--threads', '1', '--in-process', '--json', str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    rows = json.loads(out_json.read_text())
    runs = [r for r in rows if not r.get('matmul')]
    assert [(r['stride'], r['mode']) for r in runs] == [
        (s, m) for s in (64, 16) for m in ('batched', 'loop', 'budget', '2', 'shared')]
    chunks = {r['mode']: r['chunk'] for r in runs}
    assert chunks['loop'] == 1 and chunks['2'] == 2 and chunks['budget'] >= chunks['batched']
    assert all(r['gflop_per_window'] > 0 and r['gflops'] > 0 for r in runs)
    shared = [r for r in runs if r['mode'] == 'shared']
    assert all(set(r['deviation']) == {'s4', 's8', 's16', 's32', 'clip'} for r in shared)
    assert 'shared convolutions, ViTamin-Tiny stride 16:' in text
    assert re.search(r'Matrix product 2048x2048x2048 float32 on CPU \(1 threads\): \d+ GFLOP/s',
                     text)
    assert 'time vs loop' in text and 'GFLOP/win' in text


def test_heads_text_and_training_free_benchmarks_run(bench, capsys, monkeypatch):
    from vitamin_dense.errors import ConfigError
    monkeypatch.delenv('VITAMIN_BENCH_CLOCK', raising=False)  # restored afterwards
    assert bench.main(['heads', '--size', '128', '--queries', '5', '--repeats', '1',
                       '--warmup', '0', '--threads', '1', '--in-process']) == 0
    text = capsys.readouterr().out
    assert re.search(r'gather\s+\d+\.\d+\s+\d+\.\d+x\s+\d\.\de-\d+', text)
    assert 'time ratio' in text and 'final masks differ by at most' in text
    assert bench.main(['text', '--model', 'ViTamin-Tiny', '--vocabulary', 'cat,dog,a red car',
                       '--compare', '--threads', '1', '--in-process']) == 0
    text = capsys.readouterr().out
    assert '3 classes, 42 prompts (14 templates)' in text and 'memory-cache hit' in text
    assert re.search(r'embeddings differ by at most \d\.\de-0[5-9]', text)
    assert bench.main(['training_free', '--variants', 'ViTamin-Tiny', '--size', '96',
                       '--num-classes', '3', '--repeats', '1', '--warmup', '0',
                       '--threads', '1', '--clock', 'cpu', '--in-process']) == 0
    assert re.search(r'ViTamin-Tiny\s+96x96\s+64\s+32\s+4\s', capsys.readouterr().out)
    assert os.environ['VITAMIN_BENCH_CLOCK'] == 'cpu'  # CPU seconds, here and in workers
    with pytest.raises(ConfigError, match='--impls'):
        bench.main(['heads', '--impls', 'cuda', '--in-process'])
    with pytest.raises(ConfigError, match="bad stride 'half'"):
        bench.main(['backbone', '--variants', 'ViTamin-Tiny', '--strides', 'half',
                    '--in-process'])


@pytest.mark.slow
def test_gpu_script_runs_on_a_cpu(tmp_path):
    """tools/benchmark_gpu.sh, as a GPU machine would run it, on tiny models and a CPU."""
    import subprocess
    import sys
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
               WHEEL_DIR=str(tmp_path / 'no-wheels'))
    proc = subprocess.run(['bash', os.path.join(REPO, 'tools', 'benchmark_gpu.sh'), '--device',
                           'cpu', '--tiny', '--steps', 'backbone,heads', '--out',
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=3000)
    log = (tmp_path / 'benchmark_gpu.txt').read_text()
    assert proc.returncode == 0, log[-2000:]
    assert 'all steps done' in log and 'device cpu' in log
    assert re.search(r'ViTamin-Tiny\s+64\s+32\s+batched\s+49\s+\d+', log)
    assert re.search(r'Matrix product 2048x2048x2048 bfloat16 on CPU', log)
    assert 'Deformable attention, one encoder layer' in log
    assert json.loads((tmp_path / 'backbone.json').read_text())[0]['precision'] == 'bf16'
    assert not (tmp_path / 'fcclip.json').exists()  # not among --steps
    bad = subprocess.run(['bash', os.path.join(REPO, 'tools', 'benchmark_gpu.sh'), '--nope'],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count('\n') == 1


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
