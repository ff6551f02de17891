import pytest

from ca_core.layers import ALL_BLOCKS, SelectionError, layer_examples, parse_layers, step_index


def test_auto_is_15_to_18_on_flux_depth():
    assert parse_layers("auto", 19) == (15, 16, 17, 18)


@pytest.mark.parametrize("text", ["", "  ", "AUTO", " auto "])
def test_auto_spellings(text):
    assert parse_layers(text, 19) == (15, 16, 17, 18)


@pytest.mark.parametrize("depth, expected", [(8, (4, 5, 6, 7)), (4, (0, 1, 2, 3)), (3, (0, 1, 2)), (1, (0,))])
def test_auto_is_the_last_four_for_other_depths(depth, expected):
    assert parse_layers("auto", depth) == expected


@pytest.mark.parametrize("depth", [1, 3, 24, 42])
def test_auto_with_all_blocks_is_every_block(depth):
    assert parse_layers("auto", depth, ALL_BLOCKS) == tuple(range(depth))
    assert layer_examples(depth, ALL_BLOCKS).startswith("auto, all" if depth > 1 else "auto")


def test_all():
    assert parse_layers("all", 5) == (0, 1, 2, 3, 4)
    assert parse_layers("All", 19) == tuple(range(19))


def test_range():
    assert parse_layers("15-18", 19) == (15, 16, 17, 18)
    assert parse_layers(" 2 - 3 ", 19) == (2, 3)
    assert parse_layers("7-7", 19) == (7,)


def test_list_with_negative_index_sorted_and_deduplicated():
    assert parse_layers("15,16,-1", 19) == (15, 16, 18)
    assert parse_layers("18, 3, 3, -19", 19) == (0, 3, 18)
    assert parse_layers("0-2, 1-3", 19) == (0, 1, 2, 3)


@pytest.mark.parametrize("text", ["19", "15-19", "-20", "0,25"])
def test_out_of_range_mentions_the_depth(text):
    with pytest.raises(SelectionError, match="19 double blocks"):
        parse_layers(text, 19)


def test_backwards_range():
    with pytest.raises(SelectionError, match="backwards.*15-18"):
        parse_layers("18-15", 19)


@pytest.mark.parametrize("text", ["last", "15..18", "15,,16", "1.5", "15-"])
def test_garbage(text):
    with pytest.raises(SelectionError, match="cannot read"):
        parse_layers(text, 19)


@pytest.mark.parametrize("text", ["15-18", "last"])
def test_suggestions_come_from_the_model_at_hand(text):
    # a 6-block model: the examples are its own last four blocks, never Flux.1's 15-18
    with pytest.raises(SelectionError) as raised:
        parse_layers(text, 6)
    assert "auto, all, 2-5, 2,3,4,5 or -1" in str(raised.value)
    assert "15" not in str(raised.value).split(";")[-1]
    with pytest.raises(SelectionError, match="auto, all, 5-7, 5,6,7 or -1"):
        parse_layers("9", 8, last_blocks=3)


SIGMAS = [1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize("i", range(len(SIGMAS) - 1))
def test_schedule_sigmas_map_to_their_index(i):
    assert step_index(SIGMAS[i], SIGMAS) == i


def test_schedule_sigma_with_rounding_noise_still_maps_to_its_index():
    assert step_index(0.5 * (1 + 1e-6), SIGMAS) == 2
    assert step_index(0.5 * (1 - 1e-6), SIGMAS) == 2


@pytest.mark.parametrize("sigma, expected", [(0.9, 0), (0.6, 1), (0.3, 2), (0.1, 3), (0.01, 3)])
def test_intermediate_sigma_counts_toward_the_step_it_started_from(sigma, expected):
    assert step_index(sigma, SIGMAS) == expected


def test_last_sigma_is_the_end_of_the_last_step_not_a_step_of_its_own():
    # Five sigmas bound four steps: 0..3.
    assert step_index(0.0, SIGMAS) == len(SIGMAS) - 2


def test_sigma_above_the_schedule_is_step_zero():
    assert step_index(2.0, SIGMAS) == 0


def test_single_sigma_schedule():
    assert step_index(1.0, [1.0]) == 0
