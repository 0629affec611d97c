"""The shipped sample distributions: the 14 extreme profiles match valueharms.values, respondents are valid."""

from __future__ import annotations

from valueharms.values import HIGHER_ORDER, SHORT_NAMES, VALUES, ValueProfile, load_distributions, read_names


def test_sample_distributions_hold_the_extremes_and_respondents(repo):
    profiles = load_distributions(repo / "samples" / "values" / "distributions.tsv")
    extremes = list(SHORT_NAMES) + list(HIGHER_ORDER)
    for name in extremes:
        assert profiles[name].scores == ValueProfile.extreme(name).scores, name
    assert profiles["Self-Enhancement"]["Power"] == 6.0 and profiles["Self-Enhancement"]["Tradition"] == 1.0
    respondents = [n for n in profiles if n.startswith("resp_")]
    assert len(respondents) >= 5 and len(profiles) == len(extremes) + len(respondents)
    for name in respondents:
        assert len(set(profiles[name].scores)) > 2  # not an extreme profile


def test_quickstart_names_resolve(repo):
    names = read_names(repo / "samples" / "values" / "quickstart_names.txt")
    assert len(names) == 3
    chosen = load_distributions(repo / "samples" / "values" / "distributions.tsv", names)
    assert list(chosen) == names and all(len(p.scores) == len(VALUES) for p in chosen.values())
