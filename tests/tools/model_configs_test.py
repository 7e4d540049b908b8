"""server/tools/model_configs.py: the training scripts' model configurations,
and no configuration at all for a row it does not know."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TOOL = os.path.join(ROOT, "server", "tools", "model_configs.py")


def run(*args):
    return subprocess.run([sys.executable, TOOL, *args], cwd=ROOT, capture_output=True, text=True)


class ModelConfigsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.dir.name, "row.json")

    def tearDown(self):
        self.dir.cleanup()

    def attention(self, row):
        result = run("accuracy", row, self.out)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(self.out) as f:
            return json.load(f)["attention"]

    def test_a_site_row_swaps_that_site_only(self):
        attention = self.attention("optimization-decoder-cross")
        self.assertEqual(attention["decoder.cross"]["type"], "optimization")
        self.assertEqual(attention["encoder.self"], "softmax")
        self.assertEqual(attention["decoder.self"], "softmax")

    def test_softmax_rows_are_softmax_everywhere(self):
        for row in ("softmax", "softmax-control"):
            self.assertEqual(set(self.attention(row).values()), {"softmax"}, row)

    def test_an_unknown_row_is_refused_and_writes_nothing(self):
        # "encoder.self" with a dot is the site's name, not the row's: it once
        # gave a softmax configuration under an optimization row's name.
        result = run("accuracy", "optimization-encoder.self", self.out)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("optimization-encoder-self", result.stderr)
        self.assertFalse(os.path.exists(self.out))


if __name__ == "__main__":
    unittest.main()
