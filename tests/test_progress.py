"""Readable progress: plain lines (no carriage returns) in log files, one summary line per command."""

import subprocess
import sys


def test_progress_in_a_log_file_writes_whole_lines_without_carriage_returns():
    code = (
        "import time\n"
        "from pipeline.progress import progress\n"
        "for _ in progress(range(3), desc='sam val-000', unit='view'):\n"
        "    time.sleep(0.01)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("sam val-000: 100%") and "3/3" in lines[-1]
    assert len(lines) <= 3  # the first frame and the final state, not a frame per item


def test_a_successful_command_ends_with_one_summary_line_on_stdout(tmp_path):
    from tests.test_report_metrics import _shard

    shard = _shard(tmp_path, "val-000", [0, 1], [0, 0])
    args = ["--split", "val", "--json", str(tmp_path / "val.json"), "--markdown", str(tmp_path / "val.md"),
            "--png", str(tmp_path / "val.png"), "--html", str(tmp_path / "val.html"), str(shard)]
    done = subprocess.run([sys.executable, "-m", "pipeline", "report", "merge", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pipeline report merge -> {tmp_path / 'val.json'}: done in ")
    assert "<table>" in (tmp_path / "val.html").read_text()  # the Markdown tables as HTML, for snakemake --report
    failed = subprocess.run([sys.executable, "-m", "pipeline", "report", "merge", *args[:-1], str(tmp_path / "nope.json")],
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and "done in" not in failed.stdout
