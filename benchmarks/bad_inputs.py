"""Run every bad input of tests/helpers/bad_inputs.py through the command line and print the
markdown table of docs/reliability.md: what was tried, the exit status and the one line cnnkit
printed (temporary paths shortened to <tmp>).

    .venv/bin/python benchmarks/bad_inputs.py > /tmp/table.md
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.bad_inputs import CASES, DEMO, TINY  # noqa: E402

from cnnkit.cli import main  # noqa: E402


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(["--quiet", *argv])
        except SystemExit as stop:
            code = stop.code or 0
    return code, err.getvalue().strip()


def main_table() -> None:
    with tempfile.TemporaryDirectory() as base:
        trained = Path(base) / "trained" / "run"
        run(["train", str(DEMO), *TINY, f"train.run_dir={trained}"])
        print("| # | bad input | exit | the one line cnnkit prints |")
        print("| ---: | --- | ---: | --- |")
        for number, case in enumerate(CASES, 1):
            tmp = Path(base) / f"case{number}"
            tmp.mkdir()
            code, line = run(case.argv(tmp, trained))
            line = line.replace(str(tmp), "<tmp>").replace(str(trained), "<run>")
            line = line.replace(base, "<tmp>").replace(str(ROOT) + "/", "")
            print(f"| {number} | {case.what} | {code} | `{line.replace('|', '/')}` |")


if __name__ == "__main__":
    main_table()
