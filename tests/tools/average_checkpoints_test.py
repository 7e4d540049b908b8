"""server/tools/average_checkpoints.py: the element-wise mean of a run's checkpoints, in
float32, integers taken from the last, float16 when asked, and models that differ refused."""
import os
import subprocess
import sys
import tempfile
import unittest

import torch

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "server", "tools")
sys.path.insert(0, TOOLS)
import safetensors_io  # noqa: E402


class AverageCheckpointsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="average-checkpoints-")
        self.paths = []
        for i, scale in enumerate((1.0, 2.0, 6.0)):
            path = os.path.join(self.dir, f"checkpoint-{i}.safetensors")
            safetensors_io.save(path, {"w": torch.full((2, 3), scale), "steps": torch.tensor([i])})
            self.paths.append(path)

    def run_tool(self, *args):
        return subprocess.run([sys.executable, os.path.join(TOOLS, "average_checkpoints.py"), *args],
                              capture_output=True, text=True)

    def test_the_mean_of_each_float_tensor_and_the_last_of_the_rest(self):
        out = os.path.join(self.dir, "mean.safetensors")
        result = self.run_tool(out, *self.paths)
        self.assertEqual(result.returncode, 0, result.stderr)
        mean = safetensors_io.load(out)
        self.assertTrue(torch.equal(mean["w"], torch.full((2, 3), 3.0)))
        self.assertEqual(mean["w"].dtype, torch.float32)
        self.assertTrue(torch.equal(mean["steps"], torch.tensor([2])))

    def test_half_stores_float16(self):
        out = os.path.join(self.dir, "mean-half.safetensors")
        self.assertEqual(self.run_tool(out, "--half", *self.paths).returncode, 0)
        self.assertEqual(safetensors_io.load(out)["w"].dtype, torch.float16)

    def test_checkpoints_of_another_model_are_refused(self):
        other = os.path.join(self.dir, "other.safetensors")
        safetensors_io.save(other, {"v": torch.zeros(2)})
        result = self.run_tool(os.path.join(self.dir, "bad.safetensors"), self.paths[0], other)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("other.safetensors", result.stderr)


if __name__ == "__main__":
    unittest.main()
