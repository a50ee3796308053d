"""The web demo: requests, caching, concurrency, errors, and the page in a real browser.

The browser test drives headless Chromium (Debian's ``chromium``, through
Playwright) against ``demo/app.py`` on 127.0.0.1: it uploads the sample photo,
types a vocabulary, submits, checks the legend and the returned picture,
uploads a corrupt file and checks the message, checks that the page fetched
nothing from another host, and saves screenshots to ``outputs/tests/``.
``tools/setup_browser.sh`` (run by ``tools/run_tests.sh``) installs the browser.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from urllib.parse import urlencode

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SAMPLE = osp.join(ROOT, 'vitamin_dense', 'assets', 'sample.jpg')
SHOTS = osp.join(ROOT, 'outputs', 'tests')


@pytest.fixture(scope='module')
def server(tiny_model_name):
    from vitamin_dense.apis import Detector, Segmenter
    from vitamin_dense.webapp import DemoModels, make_server, serve_in_thread
    segmenter = Segmenter(tiny_model_name, weights=None, device='cpu', stride=32)
    detector = Detector(model=tiny_model_name, random_init=True, device='cpu', input_size=128,
                        threshold=0.0, max_detections=5)
    srv = make_server(DemoModels(segmenter, detector=detector), port=0, max_upload_mb=1)
    serve_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def post(url, body=b'', **query):
    req = urllib.request.Request(url + 'api/predict?' + urlencode(query), data=body,
                                 method='POST')
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def image_bytes(seed: int, size=(72, 100)) -> bytes:
    import cv2
    rng = np.random.default_rng(seed)
    img = (rng.random((size[0] // 8, size[1] // 8, 3)) * 255).astype(np.uint8)
    img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return cv2.imencode('.png', img)[1].tobytes()


def test_segment_request_and_feature_cache(server):
    data = open(SAMPLE, 'rb').read()
    status, first = post(server.url, data, vocab='cat, grass; sky', task='semantic')
    assert status == 200 and first['ok']
    assert [row['name'] for row in first['legend']] and \
        {row['name'] for row in first['legend']} == {'cat', 'sky'}
    assert first['image'].startswith('data:image/png;base64,')
    assert first['meta']['features_cached'] is False
    shares = first['record']['shares']
    assert abs(sum(shares.values()) - 1) < 1e-6
    # same photo, another vocabulary: the image tower does not run again
    status, second = post(server.url, data, vocab='sofa,floor,wall')
    assert status == 200 and second['meta']['features_cached'] is True
    assert [r['name'] for r in second['legend']] != [r['name'] for r in first['legend']]


def test_boxes_request(server):
    status, out = post(server.url, example='sample.jpg', vocab='cat,remote', task='boxes',
                       model='trained')
    assert status == 200, out
    assert 0 < len(out['legend']) <= 5
    assert {row['name'] for row in out['legend']} <= {'cat', 'remote'}
    assert len(out['record']['detections']) == len(out['legend'])


@pytest.mark.parametrize('body,query,message', [
    (b'this is not an image', dict(vocab='cat'), 'not an image'),
    (image_bytes(0)[:60], dict(vocab='cat'), 'truncated or corrupt'),
    (b'', dict(vocab='cat'), 'is empty'),
    (image_bytes(0), dict(vocab=''), 'type the classes'),
    (image_bytes(0), dict(vocab='cat,cat'), 'cat'),
    (image_bytes(0), dict(vocab='cat', task='panoptic'), 'trained FC-CLIP'),
    (image_bytes(0), dict(vocab='cat', threshold='x'), 'not a number'),
    (image_bytes(0), dict(vocab='cat', example='nope.jpg'), 'no example'),
])
def test_bad_requests_get_one_line(server, body, query, message):
    status, out = post(server.url, body, **query)
    assert status == 400 and out['ok'] is False
    assert message in out['error'] and '\n' not in out['error']


def test_upload_over_the_limit(server):
    status, out = post(server.url, b'\0' * (2 * 2 ** 20), vocab='cat')
    assert status == 413 and 'limit' in out['error']


def test_concurrent_requests_do_not_mix(server):
    """Requests answered together equal the same requests answered one by one."""
    jobs = [(image_bytes(i, (64 + 16 * i, 96)), vocab, task)
            for i, (vocab, task) in enumerate([('cat,dog', 'semantic'), ('sky,road,tree', 'semantic'),
                                               ('car,bus', 'boxes'), ('a,b,c,d', 'semantic'),
                                               ('cup', 'boxes'), ('sea,sand', 'semantic')])]

    def run(job):
        body, vocab, task = job
        return post(server.url, body, vocab=vocab, task=task,
                    model='trained' if task == 'boxes' else 'training-free')[1]

    alone = [run(job) for job in jobs]
    together = [None] * len(jobs)

    def worker(i):
        together[i] = run(jobs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for (body, vocab, task), a, b in zip(jobs, alone, together):
        assert b is not None and b['ok'], b
        assert b['meta']['classes'] == vocab.split(',')
        assert b['legend'] == a['legend']
        assert b['image'] == a['image']
        if task == 'semantic':
            assert b['record']['height'] == a['record']['height']


# --------------------------------------------------------------- the browser
def find_chromium():
    for name in (os.environ.get('VITAMIN_DENSE_CHROMIUM'), 'chromium', 'chromium-browser',
                 'google-chrome'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope='module')
def app_url(tiny_model_name):
    """``demo/app.py`` in a subprocess on a free port of 127.0.0.1."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.Popen(
        [sys.executable, osp.join(ROOT, 'demo', 'app.py'), '--random-init', '--model',
         tiny_model_name, '--stride', '32', '--det-input-size', '128', '--port', '0',
         '--device', 'cpu'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env)
    try:
        line = ''
        for line in proc.stdout:
            if 'serving on' in line:
                break
        match = re.search(r'http://127\.0\.0\.1:\d+/', line)
        assert match, f'the app did not start: {line!r}'
        # keep draining the log so the app never blocks on a full pipe
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield match.group(0)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope='module')
def browser():
    sync_api = pytest.importorskip('playwright.sync_api',
                                   reason='playwright is not installed (tools/setup_browser.sh)')
    exe = find_chromium()
    if exe is None:
        pytest.skip('no Chromium on this machine: tools/setup_browser.sh installs Debian\'s '
                    '`chromium` (needs apt-get and root)')
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=['--no-sandbox'])
        yield b
        b.close()


def test_page_in_a_real_browser(browser, app_url, tmp_path):
    os.makedirs(SHOTS, exist_ok=True)
    page = browser.new_page(viewport={'width': 1280, 'height': 860})
    requested = []
    page.on('request', lambda req: requested.append(req.url))
    page.goto(app_url)
    page.set_input_files('#file', SAMPLE)
    page.fill('#vocab', 'cat, wall, floor')
    page.click('#submit')
    page.wait_for_selector('#legend tr.legend-row', timeout=120_000)
    names = page.locator('#legend tr.legend-row td.name').all_inner_texts()
    assert {n.strip() for n in names} <= {'cat', 'wall', 'floor'} and names
    assert page.eval_on_selector('#result-img', 'img => img.complete && img.naturalWidth') > 0
    assert page.get_attribute('#result-img', 'src').startswith('data:image/png;base64,')
    assert page.get_attribute('#download-png', 'href').startswith('data:image/png')
    assert not page.is_visible('#error')
    page.screenshot(path=osp.join(SHOTS, 'webapp_segment.png'), full_page=True)

    # boxes from the example photo
    page.set_input_files('#file', [])
    page.click('#example')
    page.select_option('#model', 'trained')
    page.select_option('#task', 'boxes')
    page.fill('#vocab', 'cat, remote')
    page.click('#submit')
    page.wait_for_function("document.querySelector('#legend-title').textContent"
                           ".startsWith('Boxes')", timeout=120_000)
    assert page.locator('#legend tr.legend-row').count() > 0
    page.screenshot(path=osp.join(SHOTS, 'webapp_boxes.png'), full_page=True)

    # a corrupt upload: a message on the page, no crash, the server still answers
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8\xff\xe0 definitely not a JPEG')
    page.select_option('#model', 'training-free')
    page.set_input_files('#file', str(bad))
    page.click('#submit')
    page.wait_for_selector('#error', state='visible', timeout=60_000)
    assert 'broken.jpg' in page.inner_text('#error')
    page.screenshot(path=osp.join(SHOTS, 'webapp_error.png'), full_page=True)
    page.set_input_files('#file', SAMPLE)
    page.click('#submit')
    page.wait_for_selector('#error', state='hidden', timeout=120_000)

    # offline: everything the page loaded came from the app itself
    foreign = [u for u in requested if not u.startswith(app_url) and not u.startswith(
        ('data:', 'blob:'))]
    assert not foreign, foreign


def test_trained_segmentation_tasks(tiny_model_name):
    """Panoptic and instance requests through a (random-init) trained FC-CLIP model."""
    from vitamin_dense.apis import Segmenter
    from vitamin_dense.engine.config import load_config
    from vitamin_dense.registry import MODELS, register_all_modules
    from vitamin_dense.webapp import DemoModels, Request
    register_all_modules(init_default_scope=False)
    cfg = load_config(osp.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py'))
    model = MODELS.build(cfg.model).eval()
    models = DemoModels(Segmenter(tiny_model_name, weights=None, device='cpu'), trained=model)
    assert models.choices() == {'training-free': ['semantic'],
                                'trained': ['semantic', 'panoptic', 'instance']}
    rgb = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    for task in ('semantic', 'panoptic', 'instance'):
        reply = models.predict(Request(image=rgb, vocabulary='circle; square; grass',
                                       task=task, model='trained'))
        assert reply.record['task'] == task and reply.png.startswith(b'\x89PNG')
        names = {row['name'] for row in reply.legend}
        assert names <= {'circle', 'square', 'grass'}
        if task == 'panoptic':
            assert len(reply.record['segments']) >= len(reply.legend) >= 1
        if task == 'instance':
            assert len(reply.legend) == min(50, len(reply.record['instances']))
