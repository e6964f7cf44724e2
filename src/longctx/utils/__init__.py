"""Small shared helpers: run folders, jsonl files, typed configs."""
