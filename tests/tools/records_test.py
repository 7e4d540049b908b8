"""server/tools/records.py: every record says where it came from, also on a machine without git."""
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "server", "tools")
sys.path.insert(0, TOOLS)
import records  # noqa: E402
import render_results  # noqa: E402


class RecordsTest(unittest.TestCase):
    def test_provenance_names_the_command_the_machine_and_the_caps_in_force(self):
        with mock.patch.dict(os.environ, {"ONEDNN_MAX_CPU_ISA": "AVX2", "DETR_KERNEL_MAX_ISA": "AVX2"}):
            record = records.provenance(["/x/bench.py", "--rounds", "3"])
        self.assertEqual(record["command"], "/x/bench.py --rounds 3")
        self.assertEqual(record["machine"]["onednn_max_cpu_isa"], "AVX2")
        self.assertEqual(record["machine"]["kernel_max_isa"], "AVX2")
        self.assertEqual(record["machine"]["cores"], os.cpu_count())
        self.assertTrue(record["machine"]["cpu"])
        self.assertRegex(record["date"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")

    def test_a_config_is_identified_by_its_hash(self):
        work = Path(tempfile.mkdtemp(prefix="records-"))
        (work / "a.yaml").write_text("models: []\n")
        (work / "b.yaml").write_text("models: [x]\n")
        a = records.provenance(["run"], work / "a.yaml")["config_sha256"]
        b = records.provenance(["run"], work / "b.yaml")["config_sha256"]
        self.assertEqual(len(a), 16)
        self.assertNotEqual(a, b)

    def test_without_git_the_record_has_no_commit_and_is_still_written(self):
        def no_git(*args, **kwargs):
            raise FileNotFoundError("git")
        with mock.patch.object(subprocess, "run", no_git):
            record = records.provenance(["run"])
        self.assertEqual(record["commit"], "")
        self.assertFalse(record["tree_changed"])

    def test_write_record_appends_one_line_per_record(self):
        out = Path(tempfile.mkdtemp(prefix="records-")) / "r.jsonl"
        with contextlib.redirect_stdout(io.StringIO()):
            records.write_record({"name": "first"}, out)
            records.write_record({"name": "second"}, out)
        self.assertEqual([json.loads(line)["name"] for line in out.read_text().splitlines()], ["first", "second"])

    def test_the_docs_check_names_every_record_that_cannot_say_where_it_came_from(self):
        root = Path(tempfile.mkdtemp(prefix="records-"))
        (root / "results").mkdir()
        good = records.provenance(["run"])
        lines = [json.dumps({"figure": 1, **good}),
                 json.dumps({"figure": 2, **{k: v for k, v in good.items() if k != "machine"}}),
                 json.dumps({"figure": 3, **good, "machine": "2 cores of something"}),
                 json.dumps({"figure": 4, **{k: v for k, v in good.items() if k != "command"}})]
        (root / "results" / "x.jsonl").write_text("\n".join(lines) + "\n")
        self.assertEqual(render_results.without_provenance(root), ["x.jsonl:2", "x.jsonl:3", "x.jsonl:4"])


if __name__ == "__main__":
    unittest.main()
