"""`distill data synth-kws` and `distill data synth-events`: write the synthetic datasets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _fail(err: Exception) -> int:
    print(f"distill: error: {err}", file=sys.stderr)
    return 2


def _print_summary(summary: dict) -> None:
    for key, value in summary.items():
        print(f"{key:>18}: {json.dumps(value, default=str)}")


def _synth_kws(args: argparse.Namespace) -> int:
    from distill.data.synth.common import DatasetExistsError
    from distill.data.synth.kws import synth_kws
    from distill.data.synth.words import parse_word_list

    words = parse_word_list(args.words) or None
    unknown = parse_word_list(args.unknown_words) if args.unknown_words is not None else None
    try:
        summary = synth_kws(
            Path(args.out),
            words=words,
            unknown_words=unknown,
            per_word=args.per_word,
            per_unknown=args.per_unknown,
            speakers=args.speakers,
            seed=args.seed,
            workers=args.workers,
            noise_dir=Path(args.noise_dir) if args.noise_dir else None,
            noise_seconds=args.noise_seconds,
            noise_per_type=args.noise_per_type,
            overwrite=args.overwrite,
            tts=args.tts,
            augment=args.augment,
            rooms=args.rooms,
            rir_dir=Path(args.rir_dir) if args.rir_dir else None,
            piper_mix=args.piper_mix,
            recordings=Path(args.recordings) if args.recordings else None,
            recording_copies=args.recording_copies,
        )
    except (DatasetExistsError, ValueError, FileNotFoundError) as err:
        return _fail(err)
    _print_summary(summary)
    return 0


def _synth_events(args: argparse.Namespace) -> int:
    from distill.data.synth.common import DatasetExistsError
    from distill.data.synth.events import synth_events

    try:
        summary = synth_events(
            Path(args.out),
            clips=args.clips,
            clip_seconds=args.clip_seconds,
            classes=args.classes,
            seed=args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
            soundfont=args.soundfont,
            tts=args.tts,
        )
    except (DatasetExistsError, ValueError) as err:
        return _fail(err)
    _print_summary(summary)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (written atomically via .partial)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


def _voice_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tts",
        default="auto",
        metavar="SPEC",
        help="voices: ENTRY[,ENTRY...], ENTRY = espeak[:ACCENT[+VARIANT]] | flite[:VOICE] | "
        "festival[:VOICE] | piper[:NAME|FILE.onnx|DIR][#N|#A-B], each with an optional =WEIGHT "
        "(share of --speakers, default 1); auto (default): espeak,flite,festival,piper",
    )
    p.add_argument(
        "--augment",
        default="all",
        metavar="KINDS",
        help="voice augmentation: all (default), none, or some of vtlp,pitch,tempo,room,mic",
    )
    p.add_argument(
        "--rooms", type=int, default=40, help="simulated rooms for --augment room (default 40)"
    )
    p.add_argument("--rir-dir", help="folder of measured room impulse responses (instead)")
    p.add_argument(
        "--piper-mix",
        type=float,
        default=0.5,
        help="share of multi-speaker Piper speakers that blend two speakers (default 0.5)",
    )
    p.add_argument(
        "--recordings",
        metavar="DIR",
        help="your own takes, DIR/<word>/[<speaker>/]<take>.wav, mixed into the bank",
    )
    p.add_argument(
        "--recording-copies",
        type=int,
        default=1,
        help="clips rendered from each take (own placement, EQ, augmentation; default 1)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `data` with its `synth-kws` and `synth-events` subcommands."""
    data = subparsers.add_parser("data", help="prepare datasets (synthetic generators)")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    _add_synth_kws(sub)
    _add_synth_events(sub)


def _add_synth_kws(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth-kws",
        help="spoken-keyword bank (Speech Commands layout) + background-noise bank",
        description="Write 1 s TTS keyword clips in the Speech Commands v2 layout, with "
        "speaker-disjoint splits, a manifest with speech onsets/offsets and a noise bank.",
    )
    _common(p)
    p.add_argument(
        "--words",
        nargs="+",
        help="custom keywords or short phrases "
        "(space- or comma-separated; default: the 35 Speech Commands v2 words)",
    )
    p.add_argument(
        "--unknown-words",
        nargs="*",
        help="unknown-class pool (default with --words: 20 built-in words; without --words: none)",
    )
    p.add_argument("--per-word", type=int, default=250, help="clips per keyword (default 250)")
    p.add_argument(
        "--per-unknown", type=int, default=None, help="clips per unknown word (default: --per-word)"
    )
    p.add_argument("--speakers", type=int, default=400, help="voice configurations (default 400)")
    p.add_argument("--noise-dir", help="folder of real noise recordings to add (any sample rate)")
    p.add_argument(
        "--noise-seconds",
        type=float,
        default=60.0,
        help="length of each synthetic noise file (default 60)",
    )
    p.add_argument(
        "--noise-per-type",
        type=int,
        default=5,
        help="files per synthetic noise type, >= 3 (default 5: 3 train, 1 val, 1 test)",
    )
    _voice_options(p)
    p.set_defaults(func=_synth_kws)


def _add_synth_events(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth-events",
        help="FSD50K-like multi-label sound-event set",
        description="Write clips with 1-5 sound events each, in the FSD50K layout: synthesised "
        "events plus General MIDI instruments and drums rendered from a SoundFont (.sf2).",
    )
    _common(p)
    p.add_argument("--clips", type=int, default=3000, help="number of clips (default 3000)")
    p.add_argument("--clip-seconds", type=float, default=4.0, help="clip length (default 4)")
    p.add_argument(
        "--classes",
        type=int,
        default=None,
        help="use the first K classes: the 23 synthesised ones, then the SoundFont ones "
        "(default: all)",
    )
    p.add_argument(
        "--soundfont",
        default="auto",
        metavar="auto|none|PATH",
        help="General MIDI SoundFont for the sampled-instrument classes (default auto: the first "
        "*.sf2 under /usr/share/sounds/sf2 or /usr/share/soundfonts, if any)",
    )
    p.add_argument(
        "--tts",
        default=None,
        metavar="SPEC",
        help="voices of the Speech class, as synth-kws --tts (default: eSpeak NG, as before)",
    )
    p.set_defaults(func=_synth_events)
