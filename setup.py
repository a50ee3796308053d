"""Build script: the package, its configs, tools and demos, and its requirements.

Most metadata is in setup.cfg. What needs code lives here, as in MMDetection's
setup.py: the install requirements are read from ``requirements/*.txt``
(ranges; the exact versions this project's set-up installs are pinned in
``requirements/constraints.txt``), and ``configs/``, ``tools/`` and ``demo/``
are copied into the built package as ``vitamin_dense/.mim/`` (MMDetection's
``mmdet/.mim``), so that an installed wheel has them and ``vitamin-dense train
ov_seg/vitamin_tiny_synthetic`` works from any directory
(``vitamin_dense/utils/packaged.py`` finds them). An editable install copies
nothing: the checkout's own folders are found beside the package.
"""
import os
import os.path as osp

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
#: folders of the checkout shipped in vitamin_dense/.mim/ (their .py files)
SHIPPED = ('configs', 'tools', 'demo')


def requirements(name: str) -> list:
    """The requirement lines of ``requirements/<name>``, comments dropped."""
    with open(osp.join(ROOT, 'requirements', name), encoding='utf-8') as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


class BuildPyWithMim(build_py):
    """build_py, plus configs/, tools/ and demo/ copied into vitamin_dense/.mim/."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = osp.join(self.build_lib, 'vitamin_dense', '.mim')
        for folder in SHIPPED:
            for dirpath, dirs, files in os.walk(osp.join(ROOT, folder)):
                dirs[:] = sorted(d for d in dirs if d != '__pycache__')
                for name in sorted(files):
                    if name.endswith('.py'):
                        src = osp.join(dirpath, name)
                        dst = osp.join(target, osp.relpath(src, ROOT))
                        self.mkpath(osp.dirname(dst))
                        self.copy_file(src, dst)


setup(
    install_requires=requirements('core.txt'),
    extras_require={'openmmlab': requirements('openmmlab.txt'),
                    'tests': requirements('tests.txt')},
    cmdclass={'build_py': BuildPyWithMim},
)
