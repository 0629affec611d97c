"""Sweep: skips complete adapters, trains the others in-process, writes a valid SLURM array script."""

from __future__ import annotations

import json
import subprocess

import pytest

from test_datamodule import write_vim_data
from test_fit_cli import _config
from valueharms.adapters import write_metadata
from valueharms.errors import InputError
from vim.sweep import sweep

VALUES = "Achievement\tBenevolence\tConformity\tHedonism\tPower\tSecurity\tSelf-direction\tStimulation\tTradition\tUniversalism"


@pytest.fixture()
def setup(tmp_path, tiny_model_dir):
    dist = tmp_path / "dist.tsv"
    dist.write_text(f"Country\t{VALUES}\nPow\t" + "\t".join(["1"] * 4 + ["6"] + ["1"] * 5)
                    + "\nAch\t6" + "\t1" * 9 + "\n")
    for name in ("Pow", "Ach"):
        write_vim_data(tmp_path / "data" / name, n=4)
    cfg = _config(tmp_path, tiny_model_dir, tmp_path / "data" / "{distribution}")
    cfg.write_text(cfg.read_text().replace("epochs_per_stage: 2", "epochs_per_stage: 1"))
    out = tmp_path / "out"
    done = out / "Pow"
    done.mkdir(parents=True)
    (done / "adapter_config.json").write_text("{}")
    write_metadata(done, kind="vim", name="Pow", base_model="tiny", complete=True)
    return dist, cfg, out


def test_sweep_skips_complete_and_trains_rest(setup, capsys):
    dist, cfg, out = setup
    planned = sweep(str(dist), str(cfg), out=str(out), dry_run=True)
    assert planned == [str(out / "Ach")]
    assert "--data.init_args.distribution Ach" in capsys.readouterr().out
    sweep(str(dist), str(cfg), out=str(out))
    meta = json.loads((out / "Ach" / "valueharms.json").read_text())
    assert meta["complete"] and meta["name"] == "Ach" and meta["values"]["Achievement"] == 6.0
    assert json.loads((out / "Pow" / "valueharms.json").read_text())["base_model"] == "tiny"  # untouched
    from vim.module import VIMModule

    assert VIMModule._BASE_CACHE == {}  # released after the sweep


def test_sweep_writes_slurm_array(setup, tmp_path):
    dist, cfg, out = setup
    script = tmp_path / "sweep.sh"
    sweep(str(dist), str(cfg), names=["Pow", "Ach"], out=str(out), slurm=str(script))
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text and "NAMES=(Pow Ach)" in text
    assert "valueharms fit --config" in text and '--data.init_args.distribution "$NAME"' in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert not (out / "Ach").exists()  # nothing trained


def test_sweep_unknown_name(setup):
    dist, cfg, out = setup
    with pytest.raises(InputError):
        sweep(str(dist), str(cfg), names=["Nope"], out=str(out))
