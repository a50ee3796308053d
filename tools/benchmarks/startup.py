"""Start-up time of the commands: `--help` and a bad `--vocab`, against a bare `import torch`.

Each command runs --repeats times in a fresh Python process, the commands
interleaved so that a busy machine slows them alike; the table gives the
median and the fastest wall-clock time of each, and the bare
``python -c 'import torch'`` of the same run as the yardstick (the commands
answer before importing torch, open_clip or OpenMMLab).

example:  python tools/benchmark.py startup --repeats 5
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COMMANDS = {
    "python -c 'import torch'": ['-c', 'import torch'],
    'demo/segment.py --help': ['demo/segment.py', '--help'],
    'demo/detect.py --help': ['demo/detect.py', '--help'],
    'tools/train.py --help': ['tools/train.py', '--help'],
    'tools/test.py --help': ['tools/test.py', '--help'],
    'demo/segment.py --vocab "cat,,dog"': ['demo/segment.py', '--vocab', 'cat,,dog'],
    'demo/detect.py --vocab dataset:ade151': ['demo/detect.py', '--vocab', 'dataset:ade151',
                                               '--random-init'],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--repeats', type=int, default=5, help='runs of each command (default 5)')


def run(args: argparse.Namespace) -> int:
    times: Dict[str, List[float]] = {name: [] for name in COMMANDS}
    env = dict(os.environ, PYTHONPATH=REPO)
    for _ in range(max(1, args.repeats)):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True,
                           timeout=600)
            times[name].append(time.perf_counter() - start)
    width = max(len(n) for n in COMMANDS)
    print(f'{"command":<{width}}  median s  fastest s')
    for name, values in times.items():
        print(f'{name:<{width}}  {statistics.median(values):8.2f}  {min(values):9.2f}')
    return 0
