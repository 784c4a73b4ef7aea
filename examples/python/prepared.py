"""Reads a prepared dataset folder (`trainer prepare`) with the standard library only.

The folder holds `manifest.json` (with the content `fingerprint`), `users.txt` and `items.txt`
(the raw id of each dense index, one per line) and `train.txt` (one line per user, in
`users.txt` order: dense item indices in time order). Input ids of the models are dense item
indices plus one; 0 is padding.
"""

from __future__ import annotations

import json
from pathlib import Path


def last_window(sequence: list[int], length: int) -> list[int]:
    """The last `length` items of a sequence as input ids (item i -> i + 1), left-padded with 0:
    the input of a `user_id`-only query in teacher-svc and student-svc."""
    tail = sequence[max(0, len(sequence) - length) :]
    return [0] * (length - len(tail)) + [i + 1 for i in tail]


class Dataset:
    """Raw-id maps, training sequences and fingerprint of a prepared dataset."""

    def __init__(self, folder: Path):
        folder = Path(folder)

        def lines(name: str) -> list[str]:
            text = (folder / name).read_text()
            return text.split("\n")[:-1] if text else []

        try:
            self.fingerprint = json.loads((folder / "manifest.json").read_text())["fingerprint"]
            self.users = lines("users.txt")
            self.items = lines("items.txt")
            self.train = [[int(i) for i in line.split()] for line in lines("train.txt")]
        except (OSError, KeyError, ValueError) as e:
            raise SystemExit(f"{folder} is not a prepared dataset (trainer prepare): {e}")
        if len(self.train) != len(self.users):
            raise SystemExit(f"{folder}: train.txt has {len(self.train)} lines for {len(self.users)} users")
        self.folder = folder
        self.user_index = {raw: u for u, raw in enumerate(self.users)}
        self.item_index = {raw: i for i, raw in enumerate(self.items)}

    def instances(self, sequence_length: int, target_length: int = 1):
        """The training queries in the order trainer and teacher-svc build them (every window of
        L + T consecutive items, stride 1; a shorter sequence gives one window, its input
        left-padded later): yields (user, input item indices, target item indices)."""
        l, t = sequence_length, target_length
        for user, seq in enumerate(self.train):
            if len(seq) < max(t, 1):
                continue
            if len(seq) >= l + t:
                for start in range(len(seq) - l - t + 1):
                    yield user, seq[start : start + l], seq[start + l : start + l + t]
            else:
                yield user, seq[: len(seq) - t], seq[len(seq) - t :]
