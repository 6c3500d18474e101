"""``python -m core kb ...`` sub-commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..model.knowledge import LEVELS, KnowledgeBase, KnowledgeBaseError, UserKnowledge, read_import_file
from ..setup.paths import user_kb_dir


def check_user_kb(folder: Path) -> Path:
    """A user knowledge folder must be a folder (or not exist yet), not a file or a system path."""
    import os

    real = os.path.realpath(folder)
    if real.startswith(("/proc", "/sys", "/dev")):
        raise KnowledgeBaseError(f"--user-kb {folder} is a system folder; give a folder of your own.")
    if folder.exists() and not folder.is_dir():
        raise KnowledgeBaseError(f"--user-kb {folder} is a file; give the folder that holds (or will hold) "
                                 "your entries.")
    return folder


def run(args: argparse.Namespace) -> int:
    cmd = args.kb_command
    if cmd == "build":
        from ..kb_build import build

        manifest = build()
        print(json.dumps(manifest, indent=2))
        return 0
    user_dir = check_user_kb(Path(args.user_kb)) if getattr(args, "user_kb", None) else user_kb_dir()
    if cmd == "search":
        from ..model.text_encoder import shared_encoder

        if not args.query.strip():
            raise KnowledgeBaseError("The search text is empty; type what to look for.")
        if args.k < 1:
            raise KnowledgeBaseError(f"-k must be at least 1, not {args.k}.")
        kb = KnowledgeBase.load(user_dir=user_dir)
        vec = shared_encoder().encode([args.query])
        levels = LEVELS if args.level == "all" else (args.level,)
        for level in levels:
            rows, scores = kb.search(vec, level, args.k)
            print(f"[{level}]")
            for r, s in zip(rows[0], scores[0], strict=True):
                if r >= 0:
                    e = kb.entries[r]
                    print(f"  {s:.3f}  {e.name}  ({e.source})")
        return 0
    if cmd in ("add", "import"):
        kb = KnowledgeBase.load(user_dir=False)
        items = (
            [{"level": args.level, "name": args.name, "text": args.text}]
            if cmd == "add"
            else read_import_file(Path(args.file))
        )
        added = UserKnowledge(user_dir).add(items, kb.entries)
        for e in added:
            print(f"added {e.level} entry '{e.name}' to {user_dir}")
        return 0
    if cmd == "info":
        kb = KnowledgeBase.load(user_dir=user_dir)
        counts = {lv: len(kb.level_rows[lv]) for lv in LEVELS}
        print(json.dumps({"counts": counts, "manifest": kb.manifest}, indent=2))
        return 0
    raise AssertionError(cmd)
