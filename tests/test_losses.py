"""The tracking loss: which cells' boxes it supervises, and that a perfect map costs nothing."""

from __future__ import annotations

import torch

from trainer.losses import centre_cells, tracking_loss

SIDE = 12
# One box of about three cells, centred inside cell (5, 6): cx = 5.4 / 12, cy = 6.7 / 12.
TRUTH = torch.tensor([[(5.4 - 1.5) / SIDE, (6.7 - 1.25) / SIDE, 3.0 / SIDE, 2.5 / SIDE]])


def perfect_maps() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maps whose every cell decodes exactly the true box (offsets point back to the centre)."""
    grid = torch.arange(SIDE, dtype=torch.float32)
    cx, cy = 5.4, 6.7
    offset = torch.stack([(cx - grid).view(1, -1).expand(SIDE, SIDE), (cy - grid).view(-1, 1).expand(SIDE, SIDE)])
    size = torch.stack([torch.full((SIDE, SIDE), 3.0 / SIDE), torch.full((SIDE, SIDE), 2.5 / SIDE)])
    score = torch.full((1, 1, SIDE, SIDE), 1e-4)
    score[0, 0, 6, 5] = 1 - 1e-4
    return score, size.unsqueeze(0), offset.unsqueeze(0)


def test_centre_cell_is_the_floor_of_the_centre():
    ix, iy = centre_cells(TRUTH, SIDE)
    assert (int(ix), int(iy)) == (5, 6)


def test_perfect_maps_cost_only_the_focal_floor_at_any_radius():
    score, size, offset = perfect_maps()
    for radius in (0, 1, 2):
        loss, iou = tracking_loss(score, size, offset, TRUTH, regression_radius=radius)
        assert float(iou) > 0.999
        assert float(loss) < 0.01


def test_radius_zero_supervises_the_centre_cell_only():
    score, size, offset = perfect_maps()
    offset = offset.clone().requires_grad_(True)
    loss, _ = tracking_loss(score, size, offset, TRUTH, regression_radius=0)
    loss.sum().backward()
    touched = (offset.grad.abs().sum(1)[0] > 0).nonzero().tolist()
    assert touched in ([], [[6, 5]])  # zero loss may give zero gradient; never another cell


def test_radius_one_trains_the_neighbours_toward_the_true_centre():
    score, size, offset = perfect_maps()
    wrong = offset.clone()
    wrong[0, 0, 6, 6] += 1.0  # the cell right of the centre decodes a box one cell too far right
    centre_only, _ = tracking_loss(score, size, wrong, TRUTH, regression_radius=0)
    neighbours, _ = tracking_loss(score, size, wrong, TRUTH, regression_radius=1)
    assert float(centre_only) < 0.01  # the old loss never sees the neighbour's error
    assert float(neighbours) > 0.1
    far = offset.clone()
    far[0, 0, 6, 8] += 1.0  # three cells away: outside radius 1
    outside, _ = tracking_loss(score, size, far, TRUTH, regression_radius=1)
    assert float(outside) < 0.01
    wrong.requires_grad_(True)
    tracking_loss(score, size, wrong, TRUTH, regression_radius=1)[0].sum().backward()
    assert float(wrong.grad[0, 0, 6, 6]) > 0  # descending the gradient pulls its x offset back
