"""``readmission-model`` / ``python -m risk_model``: train a model, convert Diabetes-130."""

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def _portable(arg: str) -> str:
    """Show a shared-data path the way the docs name it (``../shared/data/...``), so the
    recorded command does not depend on where this checkout happens to live."""
    marker = "/shared/data/"
    resolved = str(Path(arg).resolve()) if "shared/data" in arg else arg
    return "../shared/data/" + resolved.split(marker, 1)[1] if marker in resolved else arg


def _train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from risk_model import dataset, model_card
    from risk_model.train import train, write_artifact

    if args.diabetes130:
        table = dataset.from_diabetes130(
            args.diabetes130, limit=args.limit, progress=not args.quiet
        )
        source = f"Diabetes-130 ({Path(args.diabetes130).name}) converted to FHIR R4"
    elif args.bundles:
        table = dataset.from_bundles(args.bundles, label_file=args.labels, progress=not args.quiet)
        source = f"FHIR bundles ({Path(args.bundles).name})"
    else:
        print("give --diabetes130 CSV or --bundles PATH", file=sys.stderr)
        return 2
    result = train(table, seed=args.seed, n_boot=args.bootstrap)
    command = "readmission-model " + " ".join(shlex.quote(_portable(a)) for a in argv)
    path = write_artifact(
        result, args.out, name=args.name, version=args.version, source=source,
        command=command, install=args.install,
    )  # fmt: skip
    if args.card:
        card = model_card.write(result, args.card, name=args.name, version=args.version,
                                source=source, command=command)  # fmt: skip
        # a copy beside the artifact, so the package can serve the card of the model it runs
        path.with_suffix(".md").write_text(card.read_text(encoding="utf-8"), encoding="utf-8")
    for key, m in result.test.items():
        print(
            f"{key:9s} AUROC {m.auroc:.3f} [{m.auroc_ci_low:.3f}, {m.auroc_ci_high:.3f}] "
            f"AUPRC {m.auprc:.3f} Brier {m.brier:.4f} slope {m.calibration_slope:.2f} "
            f"intercept {m.calibration_intercept:.2f}"
        )
    print(f"artifact: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="readmission-model")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train, evaluate and write an artifact + model card")
    t.add_argument("--diabetes130", type=Path, help="Diabetes-130 CSV[.gz], converted to FHIR")
    t.add_argument(
        "--bundles",
        type=Path,
        help="Bundles (JSON files or NDJSON) or Bulk Data NDJSON resources ($export output)",
    )
    t.add_argument("--labels", type=Path, help="labels.csv beside the bundles (else derived)")
    t.add_argument("--out", type=Path, default=Path("risk_model/artifacts"))
    t.add_argument("--card", type=Path, help="write the model card Markdown here (PNGs beside)")
    t.add_argument("--name", default="readmission-lr")
    t.add_argument("--version", default="1.0.0")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--bootstrap", type=int, default=1000)
    t.add_argument("--limit", type=int, help="use only the first N patients")
    t.add_argument("--install", action="store_true", help="make it the packaged default")
    t.add_argument("--quiet", action="store_true")
    c = sub.add_parser("convert-diabetes130", help="Diabetes-130 CSV → FHIR bundles")
    c.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args, argv)
    from risk_model.datasets.diabetes130 import main as convert_main

    return convert_main(args.rest)


if __name__ == "__main__":
    raise SystemExit(main())
