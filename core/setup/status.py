"""What is installed and ready, told without importing any heavy dependency."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from .paths import KB_DIR, model_dir, text_encoder_dir

# What the runtime (plugin, Processing, python -m core classify/ask/label/kb) imports:
# module -> pip requirement. torch and transformers are for training and export only.
RUNTIME_PACKAGES = {"numpy": "numpy<2", "onnxruntime": "onnxruntime", "tokenizers": "tokenizers",
                    "faiss": "faiss-cpu", "shapely": "shapely"}
RUNTIME_MODULES = tuple(RUNTIME_PACKAGES)


@dataclass
class PluginStatus:
    models: list[str] = field(default_factory=list)
    knowledge_base: bool = False
    text_encoder: bool = False
    missing_modules: list[str] = field(default_factory=list)

    @property
    def models_missing(self) -> bool:
        return not {"encoder.onnx", "experts.onnx"} <= set(self.models) or not self.text_encoder

    @property
    def ready(self) -> bool:
        required = {"encoder.onnx", "experts.onnx"}  # an int8 encoder may sit beside them
        return required <= set(self.models) and self.knowledge_base and self.text_encoder and not self.missing_modules

    def as_text(self) -> str:
        from .model_pack import pack_size_text

        lines = [
            "RS-SAGE is ready." if self.ready else "RS-SAGE is not ready yet.",
            "Models: " + (", ".join(self.models) if self.models else
                          f"not installed yet: 'Download models' ({pack_size_text()}, once) or 'Models from file…'"),
            "Knowledge base: " + ("installed" if self.knowledge_base else "not built"),
            "Text encoder: " + ("installed" if self.text_encoder else "comes with the model pack"),
        ]
        if self.missing_modules:
            lines.append("Missing Python packages: " + ", ".join(self.missing_modules))
        return "\n".join(lines)


def plugin_status() -> PluginStatus:
    models = sorted(p.name for p in model_dir().glob("*.onnx"))
    missing = [m for m in RUNTIME_MODULES if importlib.util.find_spec(m) is None]
    return PluginStatus(
        models=models,
        knowledge_base=(KB_DIR / "manifest.json").is_file(),
        text_encoder=(text_encoder_dir() / "text_encoder.json").is_file(),
        missing_modules=missing,
    )
