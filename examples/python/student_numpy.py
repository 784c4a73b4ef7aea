"""Reads a student artifact (model.safetensors + manifest.json) with the `safetensors` package
and scores every item for some users in numpy, with the same math as student-svc
(student-svc/src/model.rs): MF `P_u . Q_i + b_i`; Caser's vertical and horizontal
convolutions, activations, max-pool, fc and `W2[i] . [z; P_u] + b2[i]`, dropout off.

    python examples/python/student_numpy.py --model runs/demo/student-rd --data runs/demo/data \
        --users 5 --k 10 [--out scores.json]

The input of a user is the last L items of their training sequence in the prepared dataset
(`--data`), left-padded, as student-svc and teacher-svc use for a `user_id`-only query. Prints
each user's top k (seen items included) and, with --out, writes every item's score per user
as JSON: {"model": {...}, "users": [{"user_id", "user", "inputs", "scores", "top"}]}.
Scores are computed in float64 from the float32 weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from prepared import Dataset, last_window

ACTIVATIONS = {
    "identity": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


class Student:
    """A student artifact in numpy (float64)."""

    def __init__(self, folder: Path):
        self.manifest = json.loads((folder / "manifest.json").read_text())
        if self.manifest.get("format_version") != 1:
            raise SystemExit(f"{folder}: format_version {self.manifest.get('format_version')}, this reader knows 1")
        self.config = self.manifest["model"]
        self.kind = self.config["kind"]
        self.d = self.config["dim"]
        self.L = self.config["sequence_length"]
        self.num_items = self.config["num_items"]
        self.num_users = self.config["num_users"]
        self.weights = {k: v.astype(np.float64) for k, v in load_file(str(folder / "model.safetensors")).items()}
        w, d, rows = self.weights, self.d, self.num_items + 1
        self._shape("user_embeddings.weight", (self.num_users, d))
        self._shape("item_embeddings.weight", (rows, d))
        if self.kind == "mf":
            self._shape("item_bias.weight", (rows, 1))
            # Row 0 is padding: dense item i is row i + 1.
            self.table, self.bias = w["item_embeddings.weight"][1:], w["item_bias.weight"][1:, 0]
        elif self.kind == "caser":
            nv, nh, L = self.config["nv"], self.config["nh"], self.L
            if nv > 0:
                self._shape("conv_v.weight", (nv, 1, L, 1))
                self._shape("conv_v.bias", (nv,))
            if nh > 0:
                for h in range(1, L + 1):
                    self._shape(f"conv_h.{h - 1}.weight", (nh, 1, h, d))
                    self._shape(f"conv_h.{h - 1}.bias", (nh,))
            self._shape("fc1.weight", (d, nv * d + nh * L))
            self._shape("fc1.bias", (d,))
            self._shape("W2.weight", (rows, 2 * d))
            self._shape("b2.weight", (rows, 1))
            self.table, self.bias = w["W2.weight"][1:], w["b2.weight"][1:, 0]
            self.conv_act = ACTIVATIONS[self.config["conv_activation"]]
            self.fc_act = ACTIVATIONS[self.config["fc_activation"]]
        else:
            raise SystemExit(f"{folder}: unknown model kind '{self.kind}'")

    def _shape(self, name: str, shape: tuple) -> None:
        if name not in self.weights:
            raise SystemExit(f"tensor '{name}' is missing from the artifact")
        if self.weights[name].shape != shape:
            raise SystemExit(f"tensor '{name}' has shape {self.weights[name].shape}, expected {shape}")

    def caser_z(self, inputs: np.ndarray) -> np.ndarray:
        """Caser's sequence representation z [B, d] of input ids [B, L] (0 = padding)."""
        w, L = self.weights, self.L
        E = w["item_embeddings.weight"][inputs]  # [B, L, d]
        parts = []
        nv, nh = self.config["nv"], self.config["nh"]
        if nv > 0:
            wv = w["conv_v.weight"][:, 0, :, 0]  # [nv, L]
            # out_v[b, f, j] = sum_t W[f, t] E[b, t, j] + bias[f], flattened f-major.
            out_v = np.einsum("ft,btj->bfj", wv, E) + w["conv_v.bias"][None, :, None]
            parts.append(out_v.reshape(len(inputs), -1))
        if nh > 0:
            for h in range(1, L + 1):
                wh, bh = w[f"conv_h.{h - 1}.weight"][:, 0], w[f"conv_h.{h - 1}.bias"]  # [nh, h, d], [nh]
                windows = np.stack([E[:, t : t + h] for t in range(L - h + 1)], axis=1)  # [B, L-h+1, h, d]
                conv = self.conv_act(np.einsum("fhd,bthd->btf", wh, windows) + bh)
                parts.append(conv.max(axis=1))  # max over time: [B, nh]
        x = np.concatenate(parts, axis=1)
        return self.fc_act(x @ w["fc1.weight"].T + w["fc1.bias"])

    def scores(self, users: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Scores of every dense item [B, num_items] for dense users [B] and input ids [B, L]."""
        p = self.weights["user_embeddings.weight"][users]
        query = p if self.kind == "mf" else np.concatenate([self.caser_z(inputs), p], axis=1)
        return query @ self.table.T + self.bias


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="artifact folder (model.safetensors + manifest.json)")
    parser.add_argument("--data", type=Path, required=True, help="the prepared dataset folder it was trained on")
    parser.add_argument("--user", action="append", default=[], help="raw user id (repeatable)")
    parser.add_argument("--users", type=int, default=5, help="without --user: this many users, spread over the data")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, help="write every item's score per user here (JSON)")
    args = parser.parse_args()

    student = Student(args.model)
    data = Dataset(args.data)
    if data.fingerprint != student.manifest["data"]["fingerprint"]:
        raise SystemExit(
            f"{args.model} was trained on data {student.manifest['data']['fingerprint']}, "
            f"{args.data} is {data.fingerprint}"
        )
    raw_users, train = data.users, data.train
    items = student.manifest["items"]
    if args.user:
        unknown = [u for u in args.user if u not in data.user_index]
        if unknown:
            raise SystemExit(f"unknown users {unknown} in {args.data}/users.txt")
        users = [data.user_index[u] for u in args.user]
    else:
        step = max(1, len(raw_users) // max(args.users, 1))
        users = list(range(0, len(raw_users), step))[: args.users]

    inputs = np.array([last_window(train[u], student.L) for u in users], dtype=np.int64).reshape(len(users), student.L)
    scores = student.scores(np.array(users, dtype=np.int64), inputs)
    print(f"{args.model}: {student.kind} d={student.d} items={student.num_items} users={student.num_users} L={student.L}")
    out = []
    for u, row, window in zip(users, scores, inputs):
        # Best first; ties to the smaller item, as student-svc breaks them.
        top = sorted(range(len(row)), key=lambda i: (-row[i], i))[: args.k]
        print(f"  user {raw_users[u]}: " + ", ".join(f"{items[i]} ({row[i]:.4f})" for i in top))
        out.append(
            {
                "user_id": raw_users[u],
                "user": u,
                "inputs": window.tolist(),
                "scores": row.tolist(),
                "top": [items[i] for i in top],
            }
        )
    if args.out:
        model = {"kind": student.kind, "version": student.manifest["version"], "num_items": student.num_items}
        args.out.write_text(json.dumps({"model": model, "users": out}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
