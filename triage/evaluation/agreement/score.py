"""How often a second careful reader, labelling blind, agrees with the training authors' own labels.

    python triage/evaluation/agreement/score.py

Reads second_reader.jsonl beside it (each line a training message with the second reader's labels) and the
authors' labels of the same texts from triage/data/training/. Plain Python: no Django, no model.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAINING = HERE.parents[1] / "data" / "training"
ORDER = ("low", "normal", "high", "critical")


def main() -> None:
    authors: dict[tuple[str, str], dict] = {}
    for path in TRAINING.glob("author_*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            authors[(path.stem, row["text"])] = row
    second = [json.loads(line) for line in (HERE / "second_reader.jsonl").read_text(encoding="utf-8").splitlines()]
    pairs = [(authors[(row["author"], row["text"])], row) for row in second]
    critical = [(a, b) for a, b in pairs if a["priority"] == "critical"]
    calm = [(a, b) for a, b in pairs if a["priority"] in ("low", "normal")]
    print(f"{len(pairs)} messages, {len({row['author'] for row in second})} authors")
    print(f"category agreement      {sum(a['category'] == b['category'] for a, b in pairs) / len(pairs):.3f}")
    print(f"priority agreement      {sum(a['priority'] == b['priority'] for a, b in pairs) / len(pairs):.3f}")
    within = sum(abs(ORDER.index(a["priority"]) - ORDER.index(b["priority"])) <= 1 for a, b in pairs)
    print(f"priority within one     {within / len(pairs):.3f}")
    kept = sum(b["priority"] == "critical" for _, b in critical) / len(critical)
    raised = sum(b["priority"] == "critical" for _, b in calm) / len(calm)
    print(f"authors' criticals the second reader also called critical  {kept:.3f} of {len(critical)}")
    print(f"authors' low/normal the second reader called critical      {raised:.3f} of {len(calm)}")
    by_author: dict[str, list] = defaultdict(list)
    for a, b in pairs:
        by_author[b["author"]].append(a["category"] == b["category"])
    print("category agreement by author: " + ", ".join(
        f"{name.split('_')[1]} {sum(v) / len(v):.2f}" for name, v in sorted(by_author.items())
    ))
    disagreements = Counter((a["category"], b["category"]) for a, b in pairs if a["category"] != b["category"])
    print("most frequent disagreements (author -> second reader): " + ", ".join(
        f"{x} -> {y} {n}" for (x, y), n in disagreements.most_common(5)
    ))


if __name__ == "__main__":
    main()
