"""Resuming a stopped run (`python train.py resume=<run dir>`, repro.resume) on the SYNTHETIC AV-MNIST fixture: atomic
checkpoints, one-line errors, a resumed run ending exactly like the uninterrupted one (SIGKILL included), and the
best-checkpoint and early-stopping states kept across the stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from repro.results import read_record, write_record
from repro.resume import AtomicCheckpointIO
from repro.train import build_trainer, main, run
from tests.conftest import REPO_ROOT, compose_train
from tests.learnable import LEARN, write_learnable
from tests.spine.kill_point import MARKER_ENV

# The learnable fixture: 60 train samples in batches of 8 (8 steps an epoch), shuffled, with dropout, so the random
# streams matter, and the model improves over the epochs after the stop (the tested checkpoint is one of them).
SETUP = [*LEARN, "trainer.max_epochs=4", "fusion=concat", "fusion.net.dropout=0.3", "deterministic=true"]


@pytest.fixture(scope="module")
def learnable_dir(tmp_path_factory):
    return write_learnable(tmp_path_factory)


def test_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def killed_mid_write(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    kept = torch.load(path, weights_only=False)
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.ones(3))  # the previous checkpoint, whole
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


# -- the command line: one-line errors, and a completed run is not trained again -----------------------------------
def cli(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err.strip()


def fake_run_dir(run_dir: Path, status: str | None = None) -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text("- data=avmnist\n- fusion=concat\n")
    if status:
        write_record(run_dir, {"status": status, "metrics": {"best_epoch": 3}})
    return run_dir


def test_resume_errors_are_one_line_with_the_fix(tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, f"resume={tmp_path / 'nowhere'}")
    assert code == 2 and err.startswith(f"error: resume={tmp_path / 'nowhere'}: no such folder") and "\n" not in err
    (tmp_path / "bare").mkdir()
    code, _, err = cli(monkeypatch, capsys, f"resume={tmp_path / 'bare'}")
    assert code == 2 and err == (f"error: {tmp_path / 'bare' / '.hydra' / 'config.yaml'} not found: resume= needs a "
                                 "run directory written by train.py (Hydra saves the run's config there); start the "
                                 "run anew instead")
    run_dir = fake_run_dir(tmp_path / "early", status="running")
    code, _, err = cli(monkeypatch, capsys, f"resume={run_dir}")
    assert code == 2 and err == (f"error: {run_dir / 'checkpoints' / 'last.ckpt'} not found: the run stopped before "
                                 "its first epoch ended, so there is nothing to resume; start it anew: python "
                                 "train.py data=avmnist fusion=concat")
    code, _, err = cli(monkeypatch, capsys, f"resume={run_dir}", "trainer.max_epochs=9")
    assert code == 2 and "takes no other arguments (got trainer.max_epochs=9)" in err and "\n" not in err


def test_other_ddp_ranks_relaunched_with_the_saved_overrides_are_accepted(tmp_path):
    from repro.resume import plan_resume

    run_dir = fake_run_dir(tmp_path / "stopped", status="interrupted")
    (run_dir / "checkpoints").mkdir()
    torch.save({"epoch": 1, "global_step": 8}, run_dir / "checkpoints" / "last.ckpt")
    first = plan_resume([f"resume={run_dir}"])
    assert (first.relaunched, first.epochs_done, first.global_step) == (False, 2, 8)
    assert first.hydra_argv() == ["data=avmnist", "fusion=concat", f"resume={run_dir}", f"hydra.run.dir={run_dir}",
                                  "hydra.output_subdir=null"]
    # Lightning's DDP launcher re-runs that command line for rank 1, with its own hydra.* settings appended
    rank1 = plan_resume([*first.hydra_argv(), f'hydra.run.dir="{run_dir}"', "hydra.job.name=train_ddp_process_1"])
    assert rank1.relaunched and rank1.overrides == first.overrides


def test_resuming_a_completed_run_says_so_and_trains_nothing(tmp_path, monkeypatch, capsys):
    run_dir = fake_run_dir(tmp_path / "done", status="completed")
    before = (run_dir / "results.json").read_text()
    code, out, err = cli(monkeypatch, capsys, f"resume={run_dir}")
    assert code == 0 and err == ""
    assert out.startswith(f"[repro] {run_dir} is already completed (results.json: status completed, best_epoch=3)")
    assert (run_dir / "results.json").read_text() == before and sorted(p.name for p in run_dir.iterdir()) == [
        ".hydra", "results.json"]


# -- in one process: a run that fails mid-epoch 3, resumed, equals the uninterrupted run ---------------------------
class _Crash(L.pytorch.Callback):
    """Fails the run at the second batch of epoch 2 (0-based), after two whole epochs: a lost machine, in-process."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 2 and batch_idx == 1:
            raise RuntimeError("machine lost")


def save_like_hydra(run_dir: Path, overrides: list[str], data_dir: Path):
    """What a Hydra app writes before the run starts: .hydra/config.yaml (unresolved) and .hydra/overrides.yaml."""
    cfg = compose_train(overrides, run_dir, data_dir)
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    return cfg


def test_failed_run_resumes_to_the_same_metrics_and_identity(tmp_path, learnable_dir, monkeypatch):
    import repro.train as train_module

    run(compose_train(SETUP, tmp_path / "whole", learnable_dir))
    whole = read_record(tmp_path / "whole" / "results.json")

    stopped = tmp_path / "stopped"
    cfg = save_like_hydra(stopped, SETUP, learnable_dir)
    real_build = train_module.build_trainer
    monkeypatch.setattr(train_module, "build_trainer", lambda c: _with(real_build(c), _Crash()))
    with pytest.raises(RuntimeError, match="machine lost"):
        run(cfg)
    monkeypatch.undo()
    before = read_record(stopped / "results.json")
    assert before["status"] == "failed"
    assert torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1  # two epochs done

    run(compose_train([*SETUP, f"resume={stopped}"], stopped, learnable_dir))
    after = read_record(stopped / "results.json")
    assert after["status"] == "completed"
    assert after["metrics"]["test"] == whole["metrics"]["test"]  # exact floats, loss included
    assert after["metrics"]["val"] == whole["metrics"]["val"]
    assert after["metrics"]["best_epoch"] == whole["metrics"]["best_epoch"] >= 2  # tested: a checkpoint made after
    assert after["metrics"]["epochs_run"] == whole["metrics"]["epochs_run"] == 4
    assert (after["run_id"], after["identity"]) == (before["run_id"], before["identity"])
    assert after["identity"] == whole["identity"] and after["overrides"] == SETUP
    assert [(r["after_epoch"], r["previous_status"]) for r in after["resumed"]] == [(2, "failed")]
    assert "resumed" not in whole


def _with(trainer, callback):
    trainer.callbacks.insert(0, callback)
    return trainer


# -- the callbacks' states: the tested checkpoint is the best over ALL epochs, early stopping counts across the stop
class ScriptedValidation(L.LightningModule):
    """val/acc follows a script per epoch, so the best epoch and the early stop are known in advance."""

    SCRIPT = [0.2, 0.9, 0.5, 0.4, 0.3, 0.95]

    def __init__(self, fail_at_epoch: int | None = None):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.fail_at_epoch = fail_at_epoch

    def training_step(self, batch, batch_idx):
        if self.current_epoch == self.fail_at_epoch:
            raise RuntimeError("stopped")
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/acc", self.SCRIPT[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def scripted_fit(run_dir: Path, data_dir: Path, module: ScriptedValidation, ckpt_path: Path | None = None):
    cfg = compose_train(["data=avmnist", "callbacks=none", "logger=csv", "trainer.max_epochs=6",
                         "protocol.early_stopping_patience=2"], run_dir, data_dir)
    trainer = build_trainer(cfg)  # the configured ModelCheckpoint, EarlyStopping, random state and checkpoint IO
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=4)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader, ckpt_path=ckpt_path)
    return trainer


def test_best_checkpoint_and_early_stopping_survive_the_stop(tmp_path, data_dir):
    whole = scripted_fit(tmp_path / "whole", data_dir, ScriptedValidation())
    # uninterrupted: best 0.9 at epoch 1; epochs 2 and 3 do not improve -> patience 2 stops after epoch 3
    assert whole.current_epoch == 4 and whole.checkpoint_callback.best_model_score == pytest.approx(0.9)

    stopped = tmp_path / "stopped"
    with pytest.raises(RuntimeError, match="stopped"):  # after epochs 0-2: best was epoch 1, one epoch without gain
        scripted_fit(stopped, data_dir, ScriptedValidation(fail_at_epoch=3))
    resumed = scripted_fit(stopped, data_dir, ScriptedValidation(), ckpt_path=stopped / "checkpoints" / "last.ckpt")
    # lost states would pick epoch 3 (0.4) as best, reset the patience and run on to epoch 5's 0.95
    assert resumed.current_epoch == whole.current_epoch == 4
    assert resumed.checkpoint_callback.best_model_score == pytest.approx(0.9)
    assert Path(resumed.checkpoint_callback.best_model_path).name == "epoch001.ckpt"
    assert torch.load(resumed.checkpoint_callback.best_model_path, weights_only=False)["epoch"] == 1


# -- SIGKILL and SIGTERM: train.py in a subprocess, killed mid-epoch 3, resumed --------------------------------------
KILL_POINT = "+callbacks.kill_point._target_=tests.spine.kill_point.PauseToBeKilled"


def train_command(run_dir: Path, data_dir: Path) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "train.py"), *SETUP, f"paths.data_dir={data_dir}", KILL_POINT,
            f"hydra.run.dir={run_dir}"]


def run_train(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, learnable_dir) -> dict:
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    run_train(train_command(run_dir, learnable_dir))
    return read_record(run_dir / "results.json")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_train_py_resumes_to_the_same_test_metrics(sig, tmp_path, learnable_dir, uninterrupted):
    run_dir, marker = tmp_path / "run", tmp_path / "paused"
    proc = subprocess.Popen(train_command(run_dir, learnable_dir), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, MARKER_ENV: str(marker)})
    deadline = time.time() + 300
    while not marker.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert marker.is_file(), "the run never reached epoch 3"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1  # epoch 2's is there
    proc.send_signal(sig)
    proc.wait(timeout=120)
    before = read_record(run_dir / "results.json")
    assert before["status"] == ("running" if sig == signal.SIGKILL else "interrupted")  # SIGKILL: no clean-up at all

    done = run_train([sys.executable, str(REPO_ROOT / "train.py"), f"resume={run_dir}"])
    assert f"[repro] resuming {run_dir} after epoch 2" in done.stdout
    after = read_record(run_dir / "results.json")
    assert after["status"] == "completed"
    assert after["metrics"]["test"] == uninterrupted["metrics"]["test"]  # exact floats
    assert after["metrics"]["best_epoch"] == uninterrupted["metrics"]["best_epoch"] >= 2  # one made after the resume
    assert after["identity"] == before["identity"] == uninterrupted["identity"]
    assert [(r["after_epoch"], r["previous_status"]) for r in after["resumed"]] == [(2, before["status"])]
    saved = list(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    assert saved == [*SETUP, f"paths.data_dir={learnable_dir}", KILL_POINT]  # the resume kept the run's own config
    again = run_train([sys.executable, str(REPO_ROOT / "train.py"), f"resume={run_dir}"])
    assert "is already completed" in again.stdout and read_record(run_dir / "results.json") == after


# -- tables: a stopped repeat is resumed, not restarted; one stopped with other settings is kept aside -------------
def stopped_repeat(run_dir: Path, hydra_overrides: list[str], status: str | None) -> None:
    """A table repeat as a stopped train.py leaves it: Hydra's saved overrides, a last.ckpt, maybe a record."""
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(hydra_overrides), run_dir / ".hydra" / "overrides.yaml")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"a checkpoint")
    if status:
        write_record(run_dir, {"status": status, "metrics": {}})


def test_table_resumes_a_stopped_repeat_instead_of_restarting_it(tmp_path, monkeypatch):
    from repro import tables

    table = tables.load_table("mfas_t2")
    extra = tables.run_extra(table, True, tmp_path)
    [plan] = tables.plan_rows(table, True, tmp_path, ["lenet-3-image"])
    runs = plan.directory

    def saved_overrides(rep: dict, *more: str) -> list[str]:  # what Hydra's multirun job saves: no hydra.* keys
        cmd = tables.train_command(table, plan, [rep], [*extra, *more], None)
        return [a for a in cmd[3:] if not a.startswith("hydra.")]

    stopped_repeat(runs / "seed_0", saved_overrides({"seed": 0}), status="running")  # SIGKILLed: no clean-up
    stopped_repeat(runs / "seed_1", saved_overrides({"seed": 1}), status=None)  # killed before its first record
    stopped_repeat(runs / "seed_2", saved_overrides({"seed": 2}, "trainer.max_epochs=7"), status="interrupted")
    [plan] = tables.plan_rows(table, True, tmp_path, ["lenet-3-image"])
    assert plan.resume == [{"seed": 0}, {"seed": 1}]
    assert plan.missing == [{"seed": 0}, {"seed": 1}, {"seed": 2}]
    assert plan.stale == [(runs / "seed_2", "stopped run made with [trainer.max_epochs=7] where the row now has "
                                            "[trainer.max_epochs=1]")]

    launched = []

    def fake_run(cmd, **kwargs):
        launched.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(tables.subprocess, "run", fake_run)
    assert tables.launch(table, plan, extra, None, None)
    train_py = str(REPO_ROOT / "train.py")
    assert launched[:2] == [[sys.executable, train_py, f"resume={runs / 'seed_0'}"],
                            [sys.executable, train_py, f"resume={runs / 'seed_1'}"]]
    assert len(launched) == 3 and "seed=2" in launched[2] and "-m" in launched[2]  # the stale one starts anew


@pytest.mark.slow
def test_smoke_table_resumes_a_killed_repeat_end_to_end(tmp_path):
    cmd = [sys.executable, "-m", "repro.tables", "run", "mfas_t2", "--smoke", "--rows", "lenet-3-image",
           "--out", str(tmp_path)]
    first = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    seed_1 = tmp_path / "tables" / "mfas_t2-smoke" / "runs" / "lenet-3-image" / "seed_1"
    done = read_record(seed_1 / "results.json")
    write_record(seed_1, {**done, "status": "running"})  # what a SIGKILL leaves: the record of a run not finished
    second = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 runs to do, 1 of them resumed from their checkpoints/last.ckpt" in second.stdout
    after = read_record(seed_1 / "results.json")
    assert after["status"] == "completed" and after["resumed"][0]["previous_status"] == "running"
    assert (after["run_id"], after["identity"]) == (done["run_id"], done["identity"])
    assert after["metrics"]["test"] == done["metrics"]["test"]  # the checkpoint's epoch was its last: same test
    assert "| 3 |" in second.stdout  # all three repeats counted
