"""server/tools/widen_queries.py: a checkpoint with more object queries, the
trained rows kept and the added ones near copies of them."""
import os
import subprocess
import sys
import tempfile
import unittest

import torch

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "server", "tools")
sys.path.insert(0, TOOLS)
import safetensors_io  # noqa: E402
import widen_queries  # noqa: E402


class WidenQueriesTest(unittest.TestCase):
    def setUp(self):
        self.source = {
            "query_embed.weight": torch.randn(3, 8, generator=torch.Generator().manual_seed(1)).half(),
            "class_embed.bias": torch.tensor([0.5, -0.25], dtype=torch.float16),
            "backbone.num_batches_tracked": torch.tensor([7]),
        }

    def test_keeps_the_trained_rows_and_copies_them_with_noise(self):
        widened = widen_queries.widen(self.source, 7, seed=3, noise=0.1)
        rows = widened["query_embed.weight"]
        original = self.source["query_embed.weight"].float()
        self.assertEqual(tuple(rows.shape), (7, 8))
        self.assertTrue(torch.equal(rows[:3], original))
        added = rows[3:] - original[torch.tensor([0, 1, 2, 0])]
        self.assertGreater(added.abs().max().item(), 0.0)  # not exact duplicates
        self.assertLess(added.abs().max().item(), 0.1 * original.std().item() * 6)  # near the copied row

    def test_other_tensors_are_unchanged_and_the_draw_is_seeded(self):
        first = widen_queries.widen(self.source, 5, seed=4)
        again = widen_queries.widen(self.source, 5, seed=4)
        other = widen_queries.widen(self.source, 5, seed=5)
        self.assertTrue(torch.equal(first["query_embed.weight"], again["query_embed.weight"]))
        self.assertFalse(torch.equal(first["query_embed.weight"], other["query_embed.weight"]))
        self.assertTrue(torch.equal(first["class_embed.bias"], self.source["class_embed.bias"].float()))
        self.assertEqual(first["backbone.num_batches_tracked"].dtype, torch.int64)

    def test_refuses_to_drop_queries(self):
        with self.assertRaisesRegex(ValueError, "drop"):
            widen_queries.widen(self.source, 2)

    def test_command_line_writes_a_loadable_file(self):
        with tempfile.TemporaryDirectory() as folder:
            source = os.path.join(folder, "in.safetensors")
            destination = os.path.join(folder, "out.safetensors")
            safetensors_io.save(source, self.source)
            subprocess.run([sys.executable, os.path.join(TOOLS, "widen_queries.py"), source, destination,
                            "--queries", "6"], check=True, capture_output=True)
            self.assertEqual(tuple(safetensors_io.load(destination)["query_embed.weight"].shape), (6, 8))
            refused = subprocess.run([sys.executable, os.path.join(TOOLS, "widen_queries.py"), source, destination,
                                      "--queries", "1"], capture_output=True, text=True)
            self.assertNotEqual(refused.returncode, 0)
            self.assertIn("drop", refused.stderr)


if __name__ == "__main__":
    unittest.main()
