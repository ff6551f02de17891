import pytest
import torch

from ca_core.maps import ConceptMaps, concatenated


def maps_of(rows: torch.Tensor, prompts=("positive",), frames=1, raw=True, **changes) -> ConceptMaps:
    """Maps whose every value is its row's number in `rows` ([R] row labels), 2 concepts on a 2x3 grid."""
    grid = rows[:, None, None, None].float().expand(-1, 2, 2, 3).clone()
    fields = {"names": ["dog", "cat"], "image_size": (32, 48), "token_pixels": 16, "prompts": prompts,
              "frames": frames, **changes}
    return ConceptMaps(maps=grid, cross_attention_maps=-grid, raw_maps=grid + 100 if raw else None,
                       raw_cross_attention_maps=grid + 200 if raw else None, **fields)


def labels(maps: torch.Tensor) -> list[int]:
    return maps[:, 0, 0, 0].int().tolist()


def test_parts_of_a_batch_join_into_the_whole_batch_in_order():
    whole = concatenated([maps_of(torch.tensor([0, 1])), maps_of(torch.tensor([2, 3])), maps_of(torch.tensor([4]))])
    assert whole.images == 5
    assert labels(whole.maps) == [0, 1, 2, 3, 4]
    assert labels(whole.cross_attention_maps) == [0, -1, -2, -3, -4]
    assert labels(whole.raw_maps) == [100, 101, 102, 103, 104]
    assert labels(whole.raw_cross_attention_maps) == [200, 201, 202, 203, 204]
    assert whole.names == ["dog", "cat"] and whole.image_size == (32, 48)


def test_each_prompts_images_stay_together():
    """Positive images first, then negative: a part's rows are its positive images, then its negative ones."""
    both = ("positive", "negative")
    first = maps_of(torch.tensor([0, 1, 10, 11]), prompts=both)  # images 0, 1; positive 0x, negative 1x
    second = maps_of(torch.tensor([2, 12]), prompts=both)
    assert labels(concatenated([first, second]).maps) == [0, 1, 2, 10, 11, 12]


def test_a_clips_frames_stay_together():
    first = maps_of(torch.tensor([0, 1, 2]), frames=3)
    second = maps_of(torch.tensor([3, 4, 5]), frames=3)
    whole = concatenated([first, second])
    assert whole.images == 2 and labels(whole.maps) == [0, 1, 2, 3, 4, 5]


def test_maps_without_raw_scores_stay_without():
    whole = concatenated([maps_of(torch.tensor([0]), raw=False), maps_of(torch.tensor([1]), raw=False)])
    assert whole.raw_maps is None and whole.raw_cross_attention_maps is None


def test_one_part_is_itself():
    part = maps_of(torch.tensor([0, 1]))
    assert torch.equal(concatenated([part]).maps, part.maps)


def test_parts_made_differently_are_refused_naming_what_differs():
    with pytest.raises(ValueError, match="part 1 differ from part 0's in image_size, layers"):
        concatenated([maps_of(torch.tensor([0])), maps_of(torch.tensor([1]), layers=(3,), image_size=(16, 16))])
