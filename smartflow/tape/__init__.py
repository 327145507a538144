"""Record and replay of raw SmartStream frames with their receive times (``.sft`` tapes)."""
