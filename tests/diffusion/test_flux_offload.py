"""Streaming a transformer's blocks from the CPU when the device budget is short: the plan,
and the hooks driven with a fake budget and a recording mover (no GPU needed)."""

from __future__ import annotations

import pytest


def test_everything_resident_when_it_fits():
    from diffusion.flux_offload import plan_offload

    plan = plan_offload(10, [("a", 5), ("b", 5)], budget=20)
    assert plan.resident == ("a", "b") and not plan.offloads and plan.peak_bytes == 20


def test_leading_blocks_stay_and_one_slot_is_kept_for_the_block_in_flight():
    from diffusion.flux_offload import plan_offload

    blocks = [(f"b{i}", 10) for i in range(6)]
    plan = plan_offload(5, blocks, budget=40)  # 5 base + 10 slot → 25 room → 2 resident
    assert plan.resident == ("b0", "b1") and plan.streamed == ("b2", "b3", "b4", "b5")
    assert plan.peak_bytes == 5 + 20 + 10 <= 40


def test_too_small_a_budget_says_how_much_is_needed():
    from diffusion.errors import ModelLoadError
    from diffusion.flux_offload import plan_offload

    with pytest.raises(ModelLoadError, match="at least .* GiB of device memory"):
        plan_offload(2 << 30, [("b0", 1 << 30)], budget=2 << 30)


def test_streamed_blocks_visit_the_device_one_at_a_time_and_the_output_is_unchanged():
    import torch

    from diffusion.flux_offload import plan_offload, stream_blocks, transformer_blocks
    from diffusion.flux_sampling import image_ids
    from tests.fixtures.tiny_flux import tiny_transformer

    model = tiny_transformer()
    kwargs = dict(hidden_states=torch.randn(1, 16, 64), encoder_hidden_states=torch.randn(1, 8, 32),
                  pooled_projections=torch.randn(1, 32), timestep=torch.tensor([0.4]), guidance=torch.tensor([3.5]),
                  img_ids=image_ids(4, 4), txt_ids=torch.zeros(8, 3), return_dict=False)
    with torch.inference_mode():
        expected = model(**kwargs)[0]
    base, blocks = transformer_blocks(model)
    assert [name for name, _ in blocks] == ["transformer_blocks.0", "single_transformer_blocks.0",
                                            "single_transformer_blocks.1"]
    sizes = dict(blocks)
    double, single = sizes["transformer_blocks.0"], sizes["single_transformer_blocks.0"]
    assert double > 2 * single  # the double block is the largest: it is the slot, and does not fit beside it
    plan = plan_offload(base, blocks, base + double + single)  # room for one single block + the slot
    assert plan.resident == ("single_transformer_blocks.0",)
    assert plan.streamed == ("transformer_blocks.0", "single_transformer_blocks.1")

    names = {id(m): n for n, m in model.named_modules()}
    on_device: set[str] = set()
    peak = [0]
    moves = []

    def move(module, device):  # a fake device: record where each module would be
        name = names[id(module)]
        moves.append((name, device))
        (on_device.add if device == "fake" else on_device.discard)(name)
        peak[0] = max(peak[0], len([n for n in on_device if n in plan.streamed]))

    streaming = stream_blocks(model, "fake", plan, move=move)
    assert "single_transformer_blocks.0" in on_device and not on_device & set(plan.streamed)
    moves.clear()
    with torch.inference_mode():
        got = model(**kwargs)[0]
    assert torch.equal(got, expected)
    assert moves == [("transformer_blocks.0", "fake"), ("transformer_blocks.0", "cpu"),
                     ("single_transformer_blocks.1", "fake"), ("single_transformer_blocks.1", "cpu")]
    assert peak[0] == 1
    for handle in streaming.handles:
        handle.remove()
