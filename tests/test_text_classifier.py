"""TextClassifier against open_clip's encode_text, chunking, caching and limits."""
import warnings

import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from vitamin_dense.text import TextClassifier, get_templates

MODEL = 'ViTamin-Tiny'


@pytest.fixture(scope='module')
def reference():
    """An open_clip CLIP model whose weights the classifiers under test load."""
    torch.manual_seed(1)
    model = open_clip.create_model(MODEL).eval()
    return model, open_clip.get_tokenizer(MODEL)


@pytest.fixture
def weights_file(reference, tmp_path):
    path = tmp_path / 'tiny.safetensors'
    save_file({k: v.contiguous() for k, v in reference[0].state_dict().items()}, str(path))
    return str(path)


def _encode_ref(reference, prompts):
    model, tokenizer = reference
    with torch.no_grad():
        return F.normalize(model.encode_text(tokenizer(prompts)), dim=-1)


def test_matches_open_clip_with_templates_and_synonyms(reference, weights_file, tmp_path):
    clf = TextClassifier(MODEL, weights_file, templates='vild', disk_cache=str(tmp_path / 'c'))
    emb = clf.encode('kitten, cat; dog')
    templates = get_templates('vild')
    per_name = [F.normalize(_encode_ref(reference, [t.format(n) for t in templates]).mean(0), dim=0)
                for n in ('kitten', 'cat', 'dog')]
    expected = torch.stack([F.normalize((per_name[0] + per_name[1]) / 2, dim=0), per_name[2]])
    assert emb.shape == (2, 64)
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))


def test_single_template_is_open_clip_encode_text(reference, weights_file):
    clf = TextClassifier(MODEL, weights_file, templates='single', disk_cache=False)
    emb = clf.encode('dog,traffic_light')
    expected = _encode_ref(reference, ['a photo of a dog.', 'a photo of a traffic light.'])
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-5)


def test_chunk_size_does_not_change_results(weights_file):
    vocab = [f'object number {i}' for i in range(40)]
    big = TextClassifier(MODEL, weights_file, templates='vild', chunk_size=512, disk_cache=False)
    small = TextClassifier(MODEL, weights_file, templates='vild', chunk_size=7, disk_cache=False)
    torch.testing.assert_close(big.encode(vocab), small.encode(vocab), atol=1e-5, rtol=1e-5)


def test_lvis_sized_vocabulary_in_chunks(weights_file):
    clf = TextClassifier(MODEL, weights_file, templates='single', chunk_size=128,
                         disk_cache=False, progress=False)
    calls = []
    original = clf.text.forward
    clf.text.forward = lambda tokens: calls.append(len(tokens)) or original(tokens)
    emb = clf.encode([f'class {i}' for i in range(1203)])
    assert emb.shape == (1203, 64)
    assert max(calls) <= 128 and sum(calls) == 1203


def test_memory_and_disk_cache_and_invalidation(weights_file, tmp_path, monkeypatch):
    cache = str(tmp_path / 'cache')
    first = TextClassifier(MODEL, weights_file, templates='single', disk_cache=cache)
    emb = first.encode('cat,dog')
    # The same classifier answers from memory; a new one (a new CLI run) from disk.
    monkeypatch.setattr(first, 'encode_prompts', lambda *a: pytest.fail('memory cache missed'))
    torch.testing.assert_close(first.encode('cat,dog'), emb)
    second = TextClassifier(MODEL, weights_file, templates='single', disk_cache=cache)
    monkeypatch.setattr(second, 'encode_prompts', lambda *a: pytest.fail('disk cache missed'))
    torch.testing.assert_close(second.encode('cat,dog'), emb)
    # Any change of key re-encodes: names, templates, weights.
    third = TextClassifier(MODEL, weights_file, templates='vild', disk_cache=cache)
    assert third.cache_key(first_vocab('cat,dog')) != second.cache_key(first_vocab('cat,dog'))
    assert second.cache_key(first_vocab('cat,dog')) != second.cache_key(first_vocab('dog,cat'))
    other_weights = tmp_path / 'other.safetensors'
    torch.manual_seed(7)
    save_file({k: v.contiguous() for k, v in open_clip.create_model(MODEL).state_dict().items()},
              str(other_weights))
    fourth = TextClassifier(MODEL, str(other_weights), templates='single', disk_cache=cache)
    assert fourth.cache_key(first_vocab('cat,dog')) != second.cache_key(first_vocab('cat,dog'))
    assert not torch.allclose(fourth.encode('cat,dog'), emb)


def test_corrupt_disk_cache_entry_is_recomputed(weights_file, tmp_path):
    cache = tmp_path / 'cache'
    clf = TextClassifier(MODEL, weights_file, templates='single', disk_cache=str(cache))
    emb = clf.encode('cat')
    for entry in cache.iterdir():
        entry.write_bytes(b'garbage')
    fresh = TextClassifier(MODEL, weights_file, templates='single', disk_cache=str(cache))
    torch.testing.assert_close(fresh.encode('cat'), emb)


def test_random_init_never_uses_disk_cache(tmp_path):
    clf = TextClassifier(MODEL, None, templates='single', disk_cache=str(tmp_path / 'c'))
    clf.encode('cat')
    assert clf.disk_cache_dir is None and not (tmp_path / 'c').exists()


def test_weights_loaded_after_construction_rekey_the_caches(weights_file, tmp_path):
    """A trained checkpoint loaded into a random-init tower (what the Detector and the
    FC-CLIP predictor do): embeddings follow the loaded weights, the disk cache opens to
    them, and disk_cache=False stays off."""
    loaded = TextClassifier(MODEL, weights_file, templates='single', disk_cache=False)
    cache = tmp_path / 'cache'
    clf = TextClassifier(MODEL, None, templates='single', disk_cache=str(cache))
    stale = clf.encode('cat')
    clf.load_state_dict(loaded.state_dict())
    torch.testing.assert_close(clf.encode('cat'), loaded.encode('cat'))
    assert not torch.allclose(stale, clf.encode('cat'))
    assert clf.disk_cache_dir == str(cache) and any(cache.iterdir())
    off = TextClassifier(MODEL, None, templates='single', disk_cache=False)
    off.load_state_dict(loaded.state_dict())
    assert off.disk_cache_dir is None and loaded.disk_cache_dir is None


def test_long_names_warn_and_truncate(weights_file):
    clf = TextClassifier(MODEL, weights_file, templates='single', disk_cache=False)
    long_name = ' '.join(['extraordinarily'] * 60)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        emb = clf.encode(long_name)
    assert any('truncated' in str(w.message) for w in caught)
    assert emb.shape == (1, 64) and torch.isfinite(emb).all()


def test_frozen_and_not_reinitialised(weights_file):
    clf = TextClassifier(MODEL, weights_file, templates='single', disk_cache=False)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    clf.init_weights()
    clf.train()
    assert not clf.text.training
    assert all(not p.requires_grad for p in clf.parameters())
    for k, v in clf.state_dict().items():
        assert torch.equal(v, before[k]), k


def first_vocab(spec):
    from vitamin_dense.text import parse_vocabulary
    return parse_vocabulary(spec)


def test_trimmed_context_equals_open_clip_encode_text(reference, weights_file):
    """Chunks run on a context cut to their longest prompt, grouped by length; the
    embeddings are open_clip's encode_text of the full 77-token context."""
    clf = TextClassifier(MODEL, weights_file, chunk_size=4, disk_cache=False)
    assert clf.can_trim_context
    prompts = ['a photo of a dog.', 'cat', 'a photo of a very long and unusual kind of '
               'vehicle parked next to a small red fire hydrant.', 'an object',
               'a bad photo of the traffic light.', 'x', 'a photo of a dog.']
    lengths = []
    original = clf.text.forward
    clf.text.forward = lambda tokens: lengths.append(tokens.shape[1]) or original(tokens)
    trimmed = clf.encode_prompts(prompts)
    full = clf.encode_prompts(prompts, trim=False)
    assert max(lengths[:2]) < 77 and lengths[2:] == [77, 77]
    expected = _encode_ref(reference, prompts)
    torch.testing.assert_close(trimmed, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full, expected, atol=1e-5, rtol=1e-5)
    assert clf.text.attn_mask.shape == (77, 77)  # the tower's own mask is restored


def test_per_synonym_embeddings_grouped_by_class(reference, weights_file):
    """FC-CLIP's text classifier: one row per synonym (templates averaged), grouped per class."""
    from vitamin_dense.text.classifier import group_synonyms
    clf = TextClassifier(MODEL, weights_file, templates='vild', disk_cache=False)
    rows = clf.encode_synonyms('kitten, cat; dog')
    templates = get_templates('vild')
    expected = torch.stack([
        F.normalize(_encode_ref(reference, [t.format(n) for t in templates]).mean(0), dim=0)
        for n in ('kitten', 'cat', 'dog')])
    torch.testing.assert_close(rows, expected, atol=1e-5, rtol=1e-5)
    # the class mean is the normalised mean of the same rows
    torch.testing.assert_close(clf.encode('kitten, cat; dog')[0],
                               F.normalize(rows[:2].mean(0), dim=0), atol=1e-6, rtol=1e-6)
    grouped = group_synonyms(torch.arange(6.0)[:, None], [2, 1, 3])
    assert grouped[..., 0].tolist() == [[0, 1, 0], [2, 2, 2], [3, 4, 5]]  # repeats pad
    with pytest.raises(ValueError):
        group_synonyms(rows, [2, 0, 1])
