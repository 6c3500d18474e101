"""Getting RS-SAGE ready: where files live, the Python dependencies, the model pack, label
presets, and what is installed (status, doctor)."""
