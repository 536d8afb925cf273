"""The synthetic-to-real gap: score models trained on synthetic keywords on real human speech.

Real speech used (never trained on, no choice tuned on it): the ten digits of the Asterisk PBX
prompts, Debian package `asterisk-core-sounds-en-wav` (one professional female US English
speaker, the "Allison" voice; 8 kHz telephone-band PCM; CC-BY-SA-3.0), files
``/usr/share/asterisk/sounds/en_US_f_Allison/digits/0.wav`` .. ``9.wav``, one take per digit.

    apt-get install asterisk-core-sounds-en-wav
    python benchmarks/real_speech.py source-asterisk --out S/asterisk_digits
    python benchmarks/real_speech.py prepare --source S/asterisk_digits --bank BANK --out S/real
    python benchmarks/real_speech.py eval --real S/real --runs RUN_DIR ... [--teacher DIR]

`prepare` writes a test-only bank (`distill.data.real_sets`): each take 16 kHz mono, trimmed,
`--copies` clips per take (30), next to the bank's test noise files. `eval` gives, per run: the
run's own synthetic test accuracy, the accuracy on the real clips mixed into that noise at the
recipe's SNR range, and at 30-40 dB SNR, and the ratio real(30-40 dB) / synthetic.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
QUIET_SNR = "[30.0,40.0]"


def source_asterisk(out: Path, sounds: Path = ASTERISK) -> list[Path]:
    """Copy the Asterisk digit prompts to `out/<word>/allison/<digit>.wav` (the
    `--recordings` layout); a missing package is an error naming the install command."""
    from distill.errors import MissingFileError

    files = [sounds / "digits" / f"{d}.wav" for d in range(10)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise MissingFileError(
            f"{', '.join(missing)} not found: apt-get install asterisk-core-sounds-en-wav"
        )
    written = []
    for d, src in enumerate(files):
        dst = out / DIGITS[d] / "allison" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    return written


def source_bank_test(bank: Path, out: Path, words: list[str], rate: int = 8000) -> int:
    """A control: the bank's own test-split clips of `words`, resampled to `rate` (the Asterisk
    prompts' 8 kHz telephone band), in the `--recordings` layout; returns the number of files."""
    import csv

    import soundfile as sf

    from distill.data.synth.dsp import resample

    with open(bank / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test" and r["label"] in words]
    for r in rows:
        x, sr = sf.read(str(bank / r["path"]), dtype="float32")
        dst = out / r["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dst), resample(x, sr, rate), rate, subtype="PCM_16")
    return len(rows)


def _accuracy(metrics: dict) -> float:
    keys = [k for k in metrics if k.endswith("/acc") or k.endswith("/accuracy")]
    if not keys:
        raise KeyError(f"no accuracy among the metrics {sorted(metrics)}")
    return float(metrics[keys[0]])


def _student_acc(ckpt: str, root: Path | None, snr: str | None) -> float:
    from distill.pipeline.evaluate import evaluate_checkpoint

    overrides = ["data.cache_features=false"]
    overrides += [f"data.root={root}"] if root is not None else []
    overrides += [f"data.snr_db={snr}"] if snr else []
    return _accuracy(evaluate_checkpoint(ckpt, "test", overrides)["metrics"])


def eval_student(run_dir: Path, real: Path, control: Path | None = None) -> dict:
    """Synthetic test accuracy of a `distill fit` run (as trained: results.json; and at
    30-40 dB), its accuracy on the real set (recipe SNR range and 30-40 dB) and, with
    `control`, on that set at 30-40 dB."""
    results = json.loads((run_dir / "results.json").read_text())
    ckpt = results.get("best_checkpoint") or str(run_dir / "checkpoints" / "best.ckpt")
    row = {
        "run": str(run_dir),
        "seed": results.get("seed"),
        "synthetic": _accuracy(results["test"]),
    }
    row["synthetic_30_40db"] = _student_acc(ckpt, None, QUIET_SNR)
    row["real_same_snr"] = _student_acc(ckpt, real, None)
    row["real_30_40db"] = _student_acc(ckpt, real, QUIET_SNR)
    if control is not None:
        row["control_30_40db"] = _student_acc(ckpt, control, QUIET_SNR)
    return row


def eval_teacher(teacher: Path, recipe: str, real: Path) -> dict:
    """The same three accuracies for a teacher saved by `distill teach` with `recipe`."""
    import pytorch_lightning as pl

    from distill.config import load_recipe
    from distill.core.teacher_source import load_teacher_for
    from distill.data import build_datamodule
    from distill.pipeline.teach import TeacherModule

    saved = json.loads((teacher / "results.json").read_text())
    row = {"run": str(teacher), "seed": None, "synthetic": _accuracy(saved["test"])}
    for key, snr in (("real_same_snr", None), ("real_30_40db", QUIET_SNR)):
        overrides = [f"data.root={real}", f"teacher.path={teacher}", "teacher.kwargs={}"]
        overrides += [f"data.snr_db={snr}"] if snr else []
        cfg = load_recipe(recipe, overrides)
        dm = build_datamodule(cfg.data)
        module = TeacherModule(load_teacher_for(cfg), cfg, dm.task, cfg.data.clip_seconds)
        trainer = pl.Trainer(
            accelerator="auto", devices=1, logger=False, enable_model_summary=False
        )
        out = trainer.test(module, dataloaders=dm.dataloader("test"), verbose=False)[0]
        row[key] = _accuracy(out)
        if "test/teacher_attention_in_span" in out:
            row[f"{key}_attention_in_span"] = float(out["test/teacher_attention_in_span"])
    return row


def _pct(r: dict, key: str) -> str:
    return f"{100 * r[key]:.1f} %" if key in r else "-"


def _table(rows: list[dict]) -> str:
    """Markdown table of the rows (percentages; '-' where a column was not measured)."""
    lines = [
        "| run | seed | synthetic test | synthetic, 30-40 dB | control, 30-40 dB | real, bank SNR "
        "| real, 30-40 dB | real 30-40 / synthetic |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["real_30_40db"] / r["synthetic"] if r["synthetic"] else float("nan")
        cells = [r["run"], str(r["seed"]), _pct(r, "synthetic"), _pct(r, "synthetic_30_40db")]
        cells += [_pct(r, "control_30_40db"), _pct(r, "real_same_snr"), _pct(r, "real_30_40db")]
        lines.append("| " + " | ".join(cells) + f" | {100 * ratio:.0f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("source-asterisk", help="copy the Asterisk digits into --recordings layout")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--sounds", type=Path, default=ASTERISK)
    s = sub.add_parser("source-bank-test", help="control: a bank's test digits at 8 kHz")
    s.add_argument("--bank", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--rate", type=int, default=8000)
    s = sub.add_parser("prepare", help="write the test-only real set next to a bank's noise")
    s.add_argument("--source", type=Path, required=True)
    s.add_argument("--bank", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--copies", type=int, default=30)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s = sub.add_parser("eval", help="score runs (and a teacher) on the real set")
    s.add_argument("--real", type=Path, required=True)
    s.add_argument("--runs", type=Path, nargs="*", default=[])
    s.add_argument("--control", type=Path, default=None, help="a prepared control set")
    s.add_argument("--teacher", type=Path, default=None)
    s.add_argument("--teacher-recipe", default="real_gap_teacher")
    s.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = p.parse_args(argv)
    if args.cmd == "source-asterisk":
        print(f"{len(source_asterisk(args.out, args.sounds))} files in {args.out}")
        return 0
    if args.cmd == "source-bank-test":
        n = source_bank_test(args.bank, args.out, DIGITS, args.rate)
        print(f"{n} files in {args.out}")
        return 0
    if args.cmd == "prepare":
        from distill.data.real_sets import write_real_set

        summary = write_real_set(
            args.source, args.bank, args.out, args.copies, args.seed, args.overwrite
        )
        print(f"{summary['clips']} clips from {summary['takes']} takes in {args.out}")
        return 0
    start = time.time()
    rows = [eval_student(run, args.real, args.control) for run in args.runs]
    if args.teacher is not None:
        rows.append(eval_teacher(args.teacher, args.teacher_recipe, args.real))
    if args.json is not None:
        from distill.files import write_json

        write_json(args.json, {"real": str(args.real), "rows": rows})
    print(_table(rows))
    print(f"({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
