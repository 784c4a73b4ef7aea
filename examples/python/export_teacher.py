"""Builds a small teacher in PyTorch, trains it a few steps on a prepared dataset and exports it
as TorchScript for teacher-svc, with the sidecar JSON and PyTorch's own top-k rankings.

    python examples/python/export_teacher.py --data runs/demo/data --model caser --dim 16 \
        --steps 50 --out runs/py-teacher/teacher.pt --rankings runs/py-teacher/rankings.json
    teacher-svc --data runs/demo/data --model runs/py-teacher/teacher.pt

The exported module has teacher-svc's TorchScript signature:
`forward(users: int64[B], sequences: int64[B, L]) -> float32[B, N]`, users being dense user
indices (users.txt order), sequences the last L items as input ids (0 = padding, dense item i
is i + 1) oldest first, and N the dataset's number of items. The sidecar `<out>.json` gives
`data_fingerprint`, `sequence_length` and `dim`, so teacher-svc refuses it on other data.

`--rankings` writes, for some users, queries in the form of teacher-svc's Rank request (raw
ids) with the items and scores PyTorch ranks for them: from the user's own history (all items,
then the user's training items excluded) and from an explicit recent sequence with an excluded
item; and PyTorch's top k of the first training queries in StreamRankings' numbering (dense
item indices, each query's target excluded). A client can replay them against teacher-svc
(teacher-svc/tests/pytorch_export.rs does).
Everything is seeded: the same arguments give the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from prepared import Dataset, last_window


class MF(nn.Module):
    """Matrix factorisation: `P_u . Q_i + b_i` (the input sequence is not used)."""

    def __init__(self, num_users: int, num_items: int, dim: int):
        super().__init__()
        self.user_embeddings = nn.Embedding(num_users, dim)
        self.item_embeddings = nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.item_bias = nn.Embedding(num_items + 1, 1, padding_idx=0)
        nn.init.normal_(self.user_embeddings.weight, std=1.0 / dim)
        nn.init.normal_(self.item_embeddings.weight, std=1.0 / dim)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        p = self.user_embeddings(users)
        return p @ self.item_embeddings.weight[1:].t() + self.item_bias.weight[1:, 0]


class Caser(nn.Module):
    """Caser (Tang and Wang, WSDM 2018) as in the reference code: vertical and horizontal
    convolutions over the L x d embeddings of the recent items, max-pool, dropout, fc, and
    `W2[i] . [z; P_u] + b2[i]`."""

    def __init__(self, num_users: int, num_items: int, dim: int, L: int, nv: int = 2, nh: int = 4, dropout: float = 0.5):
        super().__init__()
        self.user_embeddings = nn.Embedding(num_users, dim)
        self.item_embeddings = nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.conv_v = nn.Conv2d(1, nv, (L, 1))
        self.conv_h = nn.ModuleList([nn.Conv2d(1, nh, (h, dim)) for h in range(1, L + 1)])
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(nv * dim + nh * L, dim)
        self.W2 = nn.Embedding(num_items + 1, 2 * dim, padding_idx=0)
        self.b2 = nn.Embedding(num_items + 1, 1, padding_idx=0)
        for table in (self.user_embeddings, self.item_embeddings, self.W2):
            nn.init.normal_(table.weight, std=1.0 / dim)
        nn.init.zeros_(self.b2.weight)

    def forward(self, users: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        e = self.item_embeddings(sequences).unsqueeze(1)  # [B, 1, L, d]
        out_v = self.conv_v(e).reshape(e.size(0), -1)  # [B, nv * d]
        pooled = [out_v]
        for conv in self.conv_h:
            h = torch.relu(conv(e).squeeze(3))  # [B, nh, L - h + 1]
            pooled.append(h.max(dim=2).values)
        z = torch.sigmoid(self.fc1(self.dropout(torch.cat(pooled, dim=1))))
        x = torch.cat([z, self.user_embeddings(users)], dim=1)
        return x @ self.W2.weight[1:].t() + self.b2.weight[1:, 0]


class SASRecBlock(nn.Module):
    """One SASRec block: causal self-attention reading a layer norm of its input (keys and
    values from the input itself) with a residual to that norm, then a point-wise feed-forward
    network on another layer norm, with a residual, padding positions zeroed."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(dim, eps=1e-8)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.feed_forward_norm = nn.LayerNorm(dim, eps=1e-8)
        self.ff1 = nn.Linear(dim, dim)
        self.ff2 = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, s: torch.Tensor, blocked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, d = s.shape
        dh = d // self.heads
        q = self.attention_norm(s)
        queries = self.query(q).view(b, length, self.heads, dh).transpose(1, 2)
        keys = self.key(s).view(b, length, self.heads, dh).transpose(1, 2)
        values = self.value(s).view(b, length, self.heads, dh).transpose(1, 2)
        scores = queries @ keys.transpose(-1, -2) / (dh**0.5)
        scores = scores.masked_fill(blocked.unsqueeze(1), -4294967295.0)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        s = q + (weights @ values).transpose(1, 2).reshape(b, length, d)
        f = self.feed_forward_norm(s)
        return (f + self.dropout(self.ff2(self.dropout(torch.relu(self.ff1(f)))))) * mask


class SASRec(nn.Module):
    """SASRec (Kang and McAuley, ICDM 2018) as the trainer builds it: item embeddings times
    sqrt(d) plus learned positions, causal self-attention blocks, a final layer norm, and the
    last position's output dotted with the item table (users are not read)."""

    def __init__(self, num_items: int, dim: int, L: int, blocks: int = 2, heads: int = 1, dropout: float = 0.5):
        super().__init__()
        self.dim = dim
        self.item_embeddings = nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.position_embeddings = nn.Embedding(L, dim)
        self.blocks = nn.ModuleList([SASRecBlock(dim, heads, dropout) for _ in range(blocks)])
        self.final_norm = nn.LayerNorm(dim, eps=1e-8)
        self.dropout = nn.Dropout(dropout)

    def forward(self, users: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        length = sequences.size(1)
        valid = sequences != 0
        mask = valid.unsqueeze(-1).float()
        s = self.item_embeddings(sequences) * (self.dim**0.5) + self.position_embeddings.weight[:length].unsqueeze(0)
        s = self.dropout(s) * mask
        causal = torch.ones(length, length, dtype=torch.bool, device=sequences.device).tril()
        blocked = ~(causal.unsqueeze(0) & valid.unsqueeze(1))
        for block in self.blocks:
            s = block(s, blocked, mask)
        h = self.final_norm(s)[:, -1, :]
        return h @ self.item_embeddings.weight[1:].t()


def train(model: nn.Module, data: Dataset, L: int, steps: int, batch: int, lr: float, negatives: int, gen: torch.Generator) -> list[float]:
    """A few steps of the reference objective: BCE on each training window's target and
    `negatives` uniformly sampled items (for SASRec, at the last position only: enough for an
    example whose point is the export)."""
    rows = list(data.instances(L, 1))
    if not rows:
        raise SystemExit(f"{data.folder}: no training windows")
    users = torch.tensor([u for u, _, _ in rows])
    inputs = torch.tensor([last_window(seq, L) for _, seq, _ in rows])
    targets = torch.tensor([t[0] for _, _, t in rows])
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    n_items, losses = len(data.items), []
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(rows), (min(batch, len(rows)),), generator=gen)
        scores = model(users[idx], inputs[idx])  # [B, N]
        negative = torch.randint(n_items, (len(idx), negatives), generator=gen)
        pos = scores.gather(1, targets[idx].unsqueeze(1))
        neg = scores.gather(1, negative)
        loss = nn.functional.softplus(-pos).mean() + nn.functional.softplus(neg).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    model.eval()
    return losses


def ranked(scores: torch.Tensor, exclude: set[int], k: int) -> list[tuple[int, float]]:
    """Top k (dense item, score) of one score row, best first, ties to the smaller item."""
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    return [(i, float(scores[i])) for i in order if i not in exclude][:k]


def write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared dataset folder (trainer prepare)")
    parser.add_argument("--model", choices=["caser", "mf", "sasrec"], default="caser")
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=5, help="L: recent items the model reads")
    parser.add_argument("--steps", type=int, default=50, help="training steps (0: random init)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="TorchScript file to write (the sidecar is <out>.json)")
    parser.add_argument("--rankings", type=Path, help="write PyTorch's own rankings here (JSON)")
    parser.add_argument("--users", type=int, default=20, help="users in --rankings, spread over the dataset")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--training-queries", type=int, default=64, help="also rank this many training queries (StreamRankings' first)"
    )
    args = parser.parse_args()
    if args.dim < 1 or args.seq_len < 1 or args.k < 1 or args.steps < 0:
        parser.error("--dim, --seq-len and --k must be at least 1, --steps at least 0")

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    torch.set_num_threads(1)
    data = Dataset(args.data)
    U, N, L = len(data.users), len(data.items), args.seq_len
    if args.model == "mf":
        model: nn.Module = MF(U, N, args.dim)
    elif args.model == "sasrec":
        model = SASRec(N, args.dim, L)
    else:
        model = Caser(U, N, args.dim, L)
    losses = train(model, data, L, args.steps, args.batch_size, args.lr, args.negatives, gen)
    if losses:
        print(f"trained {args.model} d={args.dim} L={L}: {args.steps} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    scripted = torch.jit.script(model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(args.out, lambda p: scripted.save(str(p)))
    sidecar = {"data_fingerprint": data.fingerprint, "sequence_length": L, "dim": args.dim}
    sidecar_path = args.out.with_name(args.out.name + ".json")
    write_atomically(sidecar_path, lambda p: p.write_text(json.dumps(sidecar, indent=2) + "\n"))
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out} ({params:,} parameters) and {sidecar_path}")

    # The saved file must score like the model it came from.
    reloaded = torch.jit.load(str(args.out))
    probe_users = torch.arange(min(U, 8))
    probe_inputs = torch.tensor([last_window(data.train[u], L) for u in probe_users.tolist()])
    with torch.no_grad():
        gap = (reloaded(probe_users, probe_inputs) - model(probe_users, probe_inputs)).abs().max().item()
    if gap > 1e-6:
        raise SystemExit(f"the reloaded TorchScript differs from the eager model by {gap}")

    if args.rankings:
        step = max(1, U // max(args.users, 1))
        users = [u for u in range(0, U, step) if data.train[u]][: args.users]
        queries = []
        with torch.no_grad():
            for u in users:
                own = model(torch.tensor([u]), torch.tensor([last_window(data.train[u], L)]))[0]
                seen = set(data.train[u])
                recent = data.train[u][-2:][::-1]  # the last two items, in the other order
                explicit = model(torch.tensor([u]), torch.tensor([last_window(recent, L)]))[0]
                excluded = ranked(explicit, set(), 1)[0][0]
                for query, scores, exclude, exclude_seen in (
                    ({"user_id": data.users[u]}, own, set(), False),
                    ({"user_id": data.users[u]}, own, seen, True),
                    ({"user_id": data.users[u], "recent_items": [data.items[i] for i in recent]}, explicit, {excluded}, False),
                ):
                    top = ranked(scores, exclude, args.k)
                    queries.append(
                        {
                            "query": query,
                            "k": args.k,
                            "exclude_items": [data.items[i] for i in sorted(exclude)] if not exclude_seen else [],
                            "exclude_seen": exclude_seen,
                            "items": [data.items[i] for i, _ in top],
                            "scores": [s for _, s in top],
                        }
                    )
        # The first training queries as StreamRankings numbers them (windows of L inputs and one
        # target, users in order), each query's own target excluded, in dense item indices.
        training = []
        with torch.no_grad():
            for index, (u, inputs, targets) in enumerate(data.instances(L, 1)):
                if index >= args.training_queries:
                    break
                scores = model(torch.tensor([u]), torch.tensor([last_window(inputs, L)]))[0]
                top = ranked(scores, set(targets), args.k)
                training.append({"query_index": index, "items": [i for i, _ in top], "scores": [s for _, s in top]})
        report = {
            "model": args.model,
            "dim": args.dim,
            "sequence_length": L,
            "torch": torch.__version__,
            "queries": queries,
            "training_queries": training,
        }
        args.rankings.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(args.rankings, lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
        first = queries[0]
        print(f"wrote {len(queries)} rankings to {args.rankings}; user {first['query']['user_id']}: {first['items']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
