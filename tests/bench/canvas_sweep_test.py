"""tests/bench/canvas_sweep.py's scoring: which canvas an image lands on, which sets
are candidates, and the choice rule. The measuring half runs in make bench-canvases."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from canvas_sweep import candidate_sets, choose, fit, grid, score, smallest_holding, source_landing_on  # noqa: E402
from traffic_bench import official_size  # noqa: E402

LONG_SIDES = [800, 896, 992, 1088, 1184, 1280, 1344]


class CanvasSweepTest(unittest.TestCase):
    def test_every_candidate_set_holds_the_largest_sizes_of_the_official_rule(self):
        sets = list(candidate_sets(LONG_SIDES))
        self.assertEqual(len(sets), 64)  # 6 optional long sides, each in or out
        for canvases in sets:
            for h, w in [(800, 1333), (1333, 800), (800, 800)]:
                self.assertIsNotNone(smallest_holding(canvases, h, w), canvases)

    def test_each_grid_canvas_gets_a_source_image_that_lands_on_it(self):
        canvases = grid(LONG_SIDES)
        self.assertEqual(len(canvases), 13)
        for canvas in canvases:
            source = source_landing_on(canvas, canvases)
            self.assertEqual(smallest_holding(canvases, *official_size(*source)), canvas)

    def test_an_image_lands_on_the_smallest_canvas_that_holds_it(self):
        canvases = grid([800, 1088, 1344])
        self.assertEqual(smallest_holding(canvases, 800, 1066), (800, 1088))
        self.assertEqual(smallest_holding(canvases, 800, 1089), (800, 1344))
        self.assertEqual(smallest_holding(canvases, 1066, 800), (1088, 800))
        self.assertIsNone(smallest_holding(canvases, 1400, 800))

    def test_fit_recovers_a_line(self):
        samples = {(800, 1000): [10 + 0.8 * 50], (800, 1250): [10 + 1.0 * 50, 10 + 1.0 * 50]}
        fixed, slope = fit(samples)
        self.assertAlmostEqual(fixed, 10)
        self.assertAlmostEqual(slope, 50)

    def test_padding_costs_in_the_score_and_the_rule_takes_the_fewest_canvases_near_the_best(self):
        def cost(c):
            return c[0] * c[1] / 1e3
        shapes = [(600, 800)] * 3 + [(900, 900)]  # 800x1066 three times, then a square
        coarse = score(grid([1344]), cost, 1.0, shapes)
        fine = score(grid([800, 1088, 1344]), cost, 1.0, shapes)
        self.assertGreater(coarse["padded_share"], fine["padded_share"])
        self.assertGreater(coarse["mean_ms"], fine["mean_ms"])
        self.assertEqual(fine["warm_up_seconds"], 5.0)
        finest = dict(fine, count=9, mean_ms=fine["mean_ms"] * 0.995)
        self.assertIs(choose([coarse, fine, finest], 0.01), fine)  # within 1% of the best, fewer canvases
        self.assertIs(choose([coarse, fine, finest], 0.001), finest)


if __name__ == "__main__":
    unittest.main()
