"""``python -m rs_sage_dev.template_val SET [SET ...] [--out JSONL]``: validation figures of the
shipped model with its labels embedded in other sentence templates (prompt ensembling), to choose
the model's ``label_templates`` setting on validation images only
(``docs/selection_logs/label_templates_rule.md``).

Each set replaces the templates every engine of this process reads from its metadata, then runs
``val_gate.val_figures`` (AID and EuroSAT validation, coarse imagery, and every label-wording row,
other benchmarks' names included, on the AID validation images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

TEMPLATE_SETS: dict[str, list[str]] = {
    "bare": ["{}"],
    "aerial": ["{}", "an aerial image of {}", "a satellite image of {}"],
    "area": ["{}", "an area of {}", "a scene with {}"],
    "many": ["{}", "an aerial image of {}", "a satellite image of {}", "an area of {}", "a scene with {}",
             "{} seen from above"],
}


def figures(templates: list[str], model_dir: Path) -> dict:
    from core.model import engine as engine_module

    from .val_gate import val_figures

    real = engine_module.label_templates
    engine_module.label_templates = lambda _value: real(templates)
    try:
        row = val_figures(model_dir)
    finally:
        engine_module.label_templates = real
    row["templates"] = templates
    return row


def main(argv: list[str] | None = None) -> int:
    from core.setup.paths import MODEL_DIR

    from .val_gate import emit_row

    p = argparse.ArgumentParser(prog="python -m rs_sage_dev.template_val", description=__doc__.split("\n\n")[0])
    p.add_argument("sets", nargs="+", choices=sorted(TEMPLATE_SETS))
    p.add_argument("--model-dir", default=None)
    p.add_argument("--out", default=None, help="JSON lines file to append the rows to")
    args = p.parse_args(argv)
    for name in args.sets:
        emit_row({"set": name, **figures(TEMPLATE_SETS[name], Path(args.model_dir or MODEL_DIR))}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
