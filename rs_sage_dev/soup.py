"""Weight-averaged models ("model soups", Wortsman et al. 2022).

Fine-tunes that start from the same weights sit in one basin of the loss, so the average of
their weights is itself a good network: it keeps one network's cost at inference and averages
out the few-image noise that separates single fine-tunes. Two soups are built: the uniform
average of every ingredient, and the greedy soup that adds ingredients in order of validation
accuracy and keeps each only if validation accuracy does not drop. Only validation images are
used; the selection rule is ``docs/selection_logs/soup_rule.md``.

    python -m rs_sage_dev.soup --out .checkpoints/soup NAME=PATH/model.pt ...
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from core.errors import RsSageError

SAME_KEYS = ("config", "answers", "kb_checksum")


def average_state_dicts(states: list[dict]) -> dict:
    """The mean of each floating-point tensor; integer buffers (batch-norm step counters) are
    taken from the first state. Every state must have the same keys and shapes."""
    import torch

    if not states:
        raise RsSageError("A soup needs at least one ingredient.")
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise RsSageError("Soup ingredients must be the same network (keys and shapes differ).")
    out = {}
    for k in keys:
        first = states[0][k]
        if torch.is_floating_point(first):
            out[k] = torch.stack([s[k].float() for s in states]).mean(0).to(first.dtype)
        else:
            out[k] = first.clone()
    return out


def check_compatible(checkpoints: dict[str, dict]) -> None:
    """Ingredients must share model config, answer list and knowledge base: otherwise their
    weights mean different things and averaging them is meaningless."""
    names = list(checkpoints)
    ref = checkpoints[names[0]]
    for name in names[1:]:
        for key in SAME_KEYS:
            if checkpoints[name].get(key) != ref.get(key):
                raise RsSageError(f"Soup ingredient {name} differs from {names[0]} in {key}.")


def greedy_order(scores: dict[str, int], score_of: Callable[[list[str]], int]) -> tuple[list[str], int]:
    """Ingredients in decreasing individual score; each is kept only if the soup with it scores
    at least as well as without it. Returns the kept names and the soup's score."""
    order = sorted(scores, key=lambda n: -scores[n])
    kept, best = [order[0]], scores[order[0]]
    for name in order[1:]:
        s = score_of(kept + [name])
        if s >= best:
            kept, best = kept + [name], s
    return kept, best


def _soup_checkpoint(checkpoints: dict[str, dict], names: list[str], paths: dict[str, str]) -> dict:
    first = checkpoints[names[0]]
    train = dict(first.get("train", {}))
    train["soup"] = [paths[n] for n in names]
    return {"model": average_state_dicts([checkpoints[n]["model"] for n in names]),
            "config": first["config"], "answers": first["answers"],
            "kb_checksum": first["kb_checksum"], "train": train}


def build(ingredients: dict[str, str], out: Path, cache: str | None = None) -> dict:
    """Writes ``out/uniform/model.pt`` and ``out/greedy/model.pt`` and ``out/soup.json`` with
    every validation count that the choice was made on."""
    import torch

    from core.model.knowledge import KnowledgeBase

    from .model import KB_LEVELS, ModelConfig, RsSageModel
    from .training import TrainData, default_cache, evaluate_split

    checkpoints = {n: torch.load(p, map_location="cpu", weights_only=True) for n, p in ingredients.items()}
    check_compatible(checkpoints)
    torch.set_num_threads(2)
    kb = KnowledgeBase.load(user_dir=False)
    kb_emb = [torch.from_numpy(kb.embeddings[kb.level_rows[lv]]) for lv in KB_LEVELS]
    first = next(iter(checkpoints.values()))
    cfg = ModelConfig.from_dict(first["config"])
    data = TrainData(Path(cache or default_cache(cfg.input_size, cfg.frozen_blocks, cfg.backbone)), kb)
    model = RsSageModel(cfg, pretrained=False)

    def val_correct(state: dict) -> tuple[int, dict]:
        model.load_state_dict(state)
        r = evaluate_split(model, data, "val", kb_emb)
        return round(r["acc"] * r["n"]), r

    log: dict = {"ingredients": {}, "n_val": len(data.split["val"]["images"])}
    scores = {}
    for name, ck in checkpoints.items():
        scores[name], r = val_correct(ck["model"])
        log["ingredients"][name] = {"path": ingredients[name], "val_correct": scores[name],
                                    "val_vqa_avg": round(r["vqa_avg"], 4)}
        print(f"{name}: {scores[name]}/{r['n']}", flush=True)
    tried: dict[str, int] = {}

    def score_of(names: list[str]) -> int:
        tried["+".join(names)] = val_correct(average_state_dicts([checkpoints[n]["model"] for n in names]))[0]
        print(f"soup {'+'.join(names)}: {tried['+'.join(names)]}", flush=True)
        return tried["+".join(names)]

    kept, greedy_score = greedy_order(scores, score_of)
    uniform_names = list(checkpoints)
    uniform_score, r_uniform = val_correct(average_state_dicts([ck["model"] for ck in checkpoints.values()]))
    print(f"uniform soup: {uniform_score}", flush=True)
    log["greedy"] = {"kept": kept, "val_correct": greedy_score, "tried": tried}
    log["uniform"] = {"kept": uniform_names, "val_correct": uniform_score,
                      "val_vqa_avg": round(r_uniform["vqa_avg"], 4)}
    log["chosen"] = "uniform" if uniform_score >= greedy_score else "greedy"
    for kind, names in (("uniform", uniform_names), ("greedy", kept)):
        (out / kind).mkdir(parents=True, exist_ok=True)
        torch.save(_soup_checkpoint(checkpoints, names, ingredients), out / kind / "model.pt")
    (out / "soup.json").write_text(json.dumps(log, indent=2) + "\n")
    return log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rs_sage_dev.soup", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for uniform/, greedy/ and soup.json")
    p.add_argument("--cache", default=None, help="stem cache (default: the training default)")
    p.add_argument("ingredients", nargs="+", metavar="NAME=PATH", help="fine-tuned model.pt files")
    args = p.parse_args(argv)
    ingredients = {}
    for item in args.ingredients:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"Expected NAME=PATH to an existing model.pt, got {item!r}.")
        ingredients[name] = path
    log = build(ingredients, Path(args.out), args.cache)
    print(json.dumps({k: log[k] for k in ("uniform", "greedy", "chosen")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
