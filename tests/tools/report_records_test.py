"""server/tools/accuracy_report.py's table_rows: the table a training script prints is also a
record that render_results.py renders by name, newest first, with where it came from."""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest
from pathlib import Path

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "server", "tools")
sys.path.insert(0, TOOLS)
import accuracy_report  # noqa: E402
import render_results  # noqa: E402


class ReportRecordsTest(unittest.TestCase):
    def test_the_printed_table_is_the_record_and_the_newest_one_renders(self):
        work = Path(tempfile.mkdtemp(prefix="report-records-"))
        (work / "results").mkdir()
        model = work / "model.safetensors"
        model.write_bytes(b"weights")
        results = work / "results" / "accuracy_tables.jsonl"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            accuracy_report.table_rows(["row", "AP"], [["a", "0.500"]], "t", [model], results)
            accuracy_report.table_rows(["row", "AP"], [["a", "0.700"]], "t", [model], results)
        records = [json.loads(line) for line in results.read_text().splitlines()]
        self.assertEqual(len(records), 2)
        self.assertEqual(records[-1]["rows"], [["a", "0.700"]])
        self.assertEqual(set(records[-1]), {"table", "header", "separator", "rows", "model_files", "date", "commit",
                                            "tree_changed", "machine", "command"})
        self.assertEqual(len(records[-1]["model_files"][str(model)]), 16)
        rendered = render_results.transcribed_table(records[-1])
        self.assertIn(rendered.strip(), printed.getvalue())
        self.assertEqual(render_results.cell(work, "t", "a", "AP"), 0.7)


if __name__ == "__main__":
    unittest.main()
