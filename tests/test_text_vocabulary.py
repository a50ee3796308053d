"""Vocabulary grammar, files and errors."""
import pytest

from vitamin_dense.errors import VocabularyError
from vitamin_dense.text import Vocabulary, parse_vocabulary, register_builtin_vocabulary


def test_comma_separates_classes():
    vocab = parse_vocabulary('cat,dog , traffic light')
    assert vocab.names == ['cat', 'dog', 'traffic light']
    assert vocab.classes == (('cat',), ('dog',), ('traffic light',))


def test_semicolon_groups_synonyms():
    vocab = parse_vocabulary('kitten, cat; dog')
    assert vocab.classes == (('kitten', 'cat'), ('dog',))
    assert vocab.names == ['kitten', 'dog']
    single = parse_vocabulary('kitten, cat;')
    assert single.classes == (('kitten', 'cat'),)


@pytest.mark.parametrize('spec', ['cat,dog', 'kitten, cat; dog', 'kitten, cat;', 'a b, c d; e'])
def test_to_string_round_trips(spec):
    vocab = parse_vocabulary(spec)
    assert parse_vocabulary(vocab.to_string()) == vocab


def test_file_one_class_per_line(tmp_path):
    path = tmp_path / 'vocab.txt'
    path.write_text('# my classes\nperson, people, man\n\ncar\n  bicycle , bike \n')
    vocab = parse_vocabulary(str(path))
    assert vocab.classes == (('person', 'people', 'man'), ('car',), ('bicycle', 'bike'))


@pytest.mark.parametrize('spec, fragment', [
    ('', 'empty'), ('   ', 'empty'), ('cat,,dog', 'empty class name'), ('cat,', 'empty class name'),
    ('cat, Cat', "'Cat' appears"), ('traffic_light,Traffic  Light', 'appears'),
    ('kitten, cat; cat', 'classes 1 and 2'),
    ('; ;', 'empty'), ('dataset:nonexistent_set', "unknown data set vocabulary"),
])
def test_bad_vocabularies_are_one_line_errors(spec, fragment):
    with pytest.raises(VocabularyError) as info:
        parse_vocabulary(spec)
    message = str(info.value)
    assert fragment in message and '\n' not in message


def test_repeat_within_a_class_is_dropped_with_a_warning():
    with pytest.warns(UserWarning, match="names 'cat' twice: the repeat is dropped"):
        assert parse_vocabulary('cat, cat;').classes == (('cat',),)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / 'empty.txt'
    path.write_text('# nothing\n\n')
    with pytest.raises(VocabularyError, match='names no class'):
        parse_vocabulary(str(path))


def test_builtin_vocabulary_and_lists():
    register_builtin_vocabulary('unit_test_set', lambda: ['person, people', 'car'])
    vocab = parse_vocabulary('dataset:unit_test_set')
    assert vocab.classes == (('person', 'people'), ('car',))
    assert parse_vocabulary([['a', 'b'], 'c']).classes == (('a', 'b'), ('c',))
    assert isinstance(parse_vocabulary(vocab), Vocabulary)
    with pytest.raises(VocabularyError):
        parse_vocabulary([])


def test_semicolon_reading_is_announced_once_per_string(caplog):
    """'kitten, cat' is two classes, 'kitten, cat; dog' two classes of which one has a synonym:
    the one ';' changes every comma, so that reading is logged (once), with the other spelling."""
    import logging
    from vitamin_dense.text.vocabulary import GRAMMAR_WARNING_LOGGER
    caplog.set_level(logging.WARNING, logger=GRAMMAR_WARNING_LOGGER)
    spec = 'kitten, cat; unit test dog'
    assert len(parse_vocabulary(spec)) == 2
    parse_vocabulary(spec)
    warnings = [r.getMessage() for r in caplog.records if r.name == GRAMMAR_WARNING_LOGGER]
    assert len(warnings) == 1, warnings
    assert '2 classes [kitten = cat], [unit test dog]' in warnings[0]
    assert "write 'kitten; cat; unit test dog'" in warnings[0]
    caplog.clear()
    for quiet in ('kitten, cat, dog', 'person; car; tree', ['kitten', 'cat']):
        parse_vocabulary(quiet)  # nothing was joined: nothing to say
    assert not [r for r in caplog.records if r.name == GRAMMAR_WARNING_LOGGER]
