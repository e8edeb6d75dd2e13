"""Every bad input of the table (tests/helpers/bad_inputs.py) ends in exit status 2 and one
line that names the file, key or argument at fault: no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.bad_inputs import CASES, DEMO, TINY, Case

from cnnkit.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    main(["--quiet", "train", str(DEMO), *TINY, f"train.run_dir={run_dir}"])
    return run_dir


def run_case(case: Case, tmp: Path, trained: Path, capfd) -> tuple[int, str]:
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", *case.argv(tmp, trained)])
        raise SystemExit(0)
    return exit_info.value.code, capfd.readouterr().err.strip()


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_is_one_line_naming_what_is_wrong(case: Case, tmp_path, trained,
                                                    capfd) -> None:
    code, err = run_case(case, tmp_path, trained, capfd)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert case.names in err, err


def test_the_table_is_long_enough() -> None:
    assert len(CASES) >= 60 and len({c.what for c in CASES}) == len(CASES)
