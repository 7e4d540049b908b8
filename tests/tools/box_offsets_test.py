"""server/tools/box_offsets.py: matches each true box to the nearest detection
of its class and reports the offsets with their signs."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "server", "tools", "box_offsets.py")


def run_tool(annotations, detection_lines, *options):
    """The tool's output lines."""
    with tempfile.TemporaryDirectory() as folder:
        annotations_path = os.path.join(folder, "val.json")
        detections_path = os.path.join(folder, "model.jsonl")
        with open(annotations_path, "w") as f:
            json.dump(annotations, f)
        with open(detections_path, "w") as f:
            f.write("".join(json.dumps(line) + "\n" for line in detection_lines))
        output = subprocess.run([sys.executable, TOOL, *options, annotations_path, detections_path],
                                check=True, capture_output=True, text=True).stdout
    return output.strip().splitlines()


def last_row(annotations, detection_lines):
    return run_tool(annotations, detection_lines)[-1].split(" | ")


class BoxOffsetsTest(unittest.TestCase):
    annotations = {
        "images": [{"id": 1, "file_name": "000001.png", "width": 192, "height": 128}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 30]},  # centre (25, 35)
            {"image_id": 1, "category_id": 2, "bbox": [100, 60, 20, 40]},  # centre (110, 80)
            {"image_id": 1, "category_id": 3, "bbox": [150, 10, 20, 20]},  # nothing near: missed
        ],
    }

    def test_signed_offsets_of_the_nearest_detection_of_each_class(self):
        detections = [
            {"box": [14, 20, 50, 50], "class_id": 1},    # centre +7, 0; width +6
            {"box": [100, 60, 140, 100], "class_id": 1},  # wrong class for the second box
            {"box": [104, 62, 128, 98], "class_id": 2},   # centre +6, 0; width +4, height -4
            {"box": [10, 10, 30, 30], "class_id": 3},     # its class, but 140 px away
        ]
        cells = last_row(self.annotations, [{"file": "/data/val/000001.png", "detections": detections}])
        self.assertEqual(cells[1:4], ["2", "1", "+6.5 / 0.5"])
        self.assertEqual(cells[4], "+0.0 / 0.0")
        self.assertEqual(cells[5], "+5.0 / 1.0")
        self.assertEqual(cells[6], "-2.0 / 2.0 |")

    def test_no_match_is_reported_not_divided_by_zero(self):
        cells = last_row(self.annotations, [{"file": "000001.png", "detections": []}])
        self.assertEqual(cells[1:3], ["0", "3"])

    def test_columns_give_the_mean_dx_by_where_the_true_centre_lies(self):
        detections = [{"box": [14, 20, 50, 50], "class_id": 1},  # truth centre x 25: dx +7
                      {"box": [98, 60, 118, 100], "class_id": 2},  # truth centre x 110: dx -2
                      {"box": [150, 10, 172, 30], "class_id": 3}]  # truth centre x 160: dx +1
        lines = run_tool(self.annotations, [{"file": "000001.png", "detections": detections}], "--columns", "64")
        self.assertIn("| detections | dx, x 0-64 | dx, x 64-128 | dx, x 128-192 |", lines)
        self.assertEqual(lines[-1].split(" | ")[1:], ["+7.0 (1)", "-2.0 (1)", "+1.0 (1) |"])


if __name__ == "__main__":
    unittest.main()
