"""``route_parameters``: which term of a multi-term loss receives which named parameter."""

from __future__ import annotations

import pytest

from losslab.losses import UnusedParameterError, get_loss, parse_loss, route_parameters

DICE = "1 - (2 * vsum(p * y) + eps) / (vsum(p) + vsum(y) + eps); eps=1e-5"
FOCAL = "nc * vmean(-(1 - p) ** gamma * y * logp); gamma=2"


def test_each_parameter_goes_to_every_term_that_uses_it():
    dice, focal = parse_loss(DICE), parse_loss(FOCAL)
    routed = route_parameters([dice, focal], {"gamma": 3.0, "eps": 1e-3}, "dice_focal")
    assert routed[0].parameters == {"eps": 1e-3}
    assert routed[1].parameters == {"gamma": 3.0}


def test_terms_keep_their_values_when_no_parameter_is_given():
    terms = (parse_loss(DICE), parse_loss(FOCAL, gamma=1.0))
    assert route_parameters(terms, {}, "x") == terms


def test_an_unused_parameter_is_named_with_the_ones_the_terms_use():
    with pytest.raises(UnusedParameterError) as info:
        route_parameters([parse_loss(DICE), parse_loss(FOCAL)], {"zeta": 1.0, "beta": 2.0}, "mix")
    error = info.value
    assert isinstance(error, ValueError)
    assert (error.owner, error.unused, error.used) == ("mix", ("beta", "zeta"), ("eps", "gamma"))
    assert str(error) == "loss 'mix' has no parameter(s) beta, zeta; its terms use: eps, gamma"


def test_terms_without_parameters_say_so():
    with pytest.raises(UnusedParameterError, match="its terms use: none$"):
        route_parameters([parse_loss("nc * vmean(-y * logp)")], {"gamma": 1.0}, "ce")


def test_a_value_out_of_range_is_still_refused():
    with pytest.raises(ValueError, match=r"gamma=-1 is out of its range"):
        route_parameters([parse_loss(FOCAL)], {"gamma": -1.0}, "focal")


def test_library_compounds_route_through_it():
    with pytest.raises(UnusedParameterError) as info:
        get_loss("dice_ce", gamma=2)
    assert info.value.unused == ("gamma",) and "eps" in info.value.used
