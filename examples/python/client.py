"""Calls teacher-svc and student-svc from Python with grpcio and checks their answers.

    python examples/python/client.py --teacher 127.0.0.1:50051 --student 127.0.0.1:50061 \
        --data runs/demo/data --users 3 --k 10

teacher-svc: Info, Rank (from the user's history, seen items excluded; and from an explicit
recent sequence with an excluded item) and one shard of StreamRankings, read to its end,
resumed from a cursor, and cross-checked query by query against Rank.
student-svc: Info, Recommend and RecommendBatch (which must agree with Recommend).

Every answer is printed and checked: k items, known and distinct ids, scores finite and sorted
best first, exclusions honoured, the served model version, shard indices and cursors
consistent. With --data (the prepared dataset folder the services were started with) the
checks also cover raw ids, seen items and the training queries of the stream. Exits 1 with
the failed check on stderr; --json writes a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import grpc

import rdproto
from prepared import Dataset

TIMEOUT_S = 60.0
#: Scores of the same query answered twice (another batch, another call) agree within this.
SCORE_TOLERANCE = 1e-4


class CheckFailed(Exception):
    """A check on a service's answer failed."""


def check(condition: bool, message: str) -> None:
    """Raises CheckFailed(message) unless condition holds (unlike assert, never stripped)."""
    if not condition:
        raise CheckFailed(message)


def check_ranking(ids: list, scores: list[float], k: int, expected_len: int | None, what: str) -> None:
    """k and length, distinct ids, finite scores sorted best first."""
    check(len(ids) == len(scores), f"{what}: {len(ids)} ids but {len(scores)} scores")
    if expected_len is not None:
        check(len(ids) == expected_len, f"{what}: {len(ids)} items, expected {expected_len} (k={k})")
    check(0 < len(ids) <= k, f"{what}: {len(ids)} items for k={k}")
    check(len(set(ids)) == len(ids), f"{what}: repeated items {ids}")
    check(all(math.isfinite(s) for s in scores), f"{what}: non-finite scores {scores}")
    check(
        all(a >= b for a, b in zip(scores, scores[1:])),
        f"{what}: scores not sorted best first: {scores}",
    )


def check_same(a: list[tuple], b: list[tuple], what: str) -> float:
    """Two rankings of the same query: same length, scores within the tolerance, the same items
    except where neighbours tie within the tolerance. Returns the largest score difference."""
    check(len(a) == len(b), f"{what}: lengths differ: {a} vs {b}")
    worst = 0.0
    for i, ((ia, sa), (ib, sb)) in enumerate(zip(a, b)):
        worst = max(worst, abs(sa - sb))
        check(abs(sa - sb) <= SCORE_TOLERANCE, f"{what}: score {i} differs: {a} vs {b}")
        if ia != ib:
            tied = any(0 <= j < len(a) and j != i and abs(a[j][1] - sa) <= SCORE_TOLERANCE for j in (i - 1, i + 1))
            check(tied, f"{what}: item {i} differs without a tie: {a} vs {b}")
    return worst


def show(title: str, items: list[tuple]) -> None:
    print(f"  {title}: " + ", ".join(f"{i} ({s:.4f})" for i, s in items))


def channel(addr: str) -> grpc.Channel:
    ch = grpc.insecure_channel(addr)
    try:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT_S)
    except grpc.FutureTimeoutError:
        raise SystemExit(f"{addr}: not reachable within {TIMEOUT_S:.0f} s")
    return ch


def when_ready(call, request):
    """Calls `call(request)`, retrying while the server answers UNAVAILABLE (a service that
    is still loading its model, or draining before a restart) for up to TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return call(request, timeout=TIMEOUT_S)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def teacher_checks(pb, addr: str, data: Dataset | None, users: list[str], args, summary: dict) -> None:
    stub = pb.teacher_grpc.TeacherServiceStub(channel(addr))
    info = when_ready(stub.Info, pb.teacher.InfoRequest())
    print(
        f"teacher {addr}: {info.model_kind} d={info.dim} items={info.num_items} users={info.num_users} "
        f"L={info.sequence_length} version={info.version} device={info.device}"
    )
    check(info.num_items > 0 and info.sequence_length > 0, f"teacher Info: {info}")
    if data is not None:
        check(info.num_items == len(data.items), f"teacher serves {info.num_items} items, the data has {len(data.items)}")
        check(
            not info.data_fingerprint or info.data_fingerprint == data.fingerprint,
            f"teacher data fingerprint {info.data_fingerprint} != {data.fingerprint}",
        )
    k, summary["teacher"] = args.k, {"version": info.version, "rank_calls": 0}

    def rank(query, k, exclude_items=(), exclude_seen=False):
        response = stub.Rank(
            pb.teacher.RankRequest(query=query, k=k, exclude_items=list(exclude_items), exclude_seen=exclude_seen),
            timeout=TIMEOUT_S,
        )
        summary["teacher"]["rank_calls"] += 1
        check(response.model_version == info.version, f"Rank answered by {response.model_version}, Info says {info.version}")
        return [(s.item_id, s.score) for s in response.items]

    for user in users:
        # From the user's own history, seen items excluded.
        got = rank(pb.common.Query(user_id=user), k, exclude_seen=True)
        show(f"Rank user {user} (seen excluded)", got)
        expected = None
        if data is not None:
            seen = {data.items[i] for i in data.train[data.user_index[user]]}
            check(not seen & {i for i, _ in got}, f"Rank user {user}: seen items returned: {seen & {i for i, _ in got}}")
            check(all(i in data.item_index for i, _ in got), f"Rank user {user}: unknown item ids in {got}")
            expected = min(k, info.num_items - len(seen))
        check_ranking([i for i, _ in got], [s for _, s in got], k, expected, f"Rank user {user}")

        # From an explicit recent sequence (the top two items), excluding the best one.
        recent = [got[1][0], got[0][0]] if len(got) > 1 else [got[0][0]]
        got2 = rank(pb.common.Query(user_id=user, recent_items=recent), k, exclude_items=[got[0][0]])
        show(f"Rank user {user} after {recent} without {got[0][0]}", got2)
        check(got[0][0] not in {i for i, _ in got2}, f"Rank: excluded item {got[0][0]} returned")
        check_ranking(
            [i for i, _ in got2], [s for _, s in got2], k, min(k, info.num_items - 1), f"Rank user {user} explicit"
        )

    # One shard of the training-query stream, read to its end.
    shard, count, stream_k = args.shard_index, args.shard_count, args.stream_k

    def stream(cursor: int):
        request = pb.teacher.StreamRankingsRequest(
            k=stream_k,
            shard_index=shard,
            shard_count=count,
            cursor=cursor,
            batch_size=args.batch_size,
            expected_data_fingerprint=data.fingerprint if data is not None else "",
        )
        return list(stub.StreamRankings(request, timeout=10 * TIMEOUT_S))

    batches = stream(0)
    check(batches, "StreamRankings sent no message")
    total = batches[0].total_queries
    indices, previous_cursor = [], 0
    for b in batches:
        check(b.total_queries == total, f"total_queries changed from {total} to {b.total_queries}")
        for r in b.rankings:
            check(r.query_index % count == shard, f"query {r.query_index} is not in shard {shard} of {count}")
            check(r.query_index >= previous_cursor, f"query {r.query_index} comes before cursor {previous_cursor}")
            check(r.query_index < b.next_cursor, f"query {r.query_index} is not below next_cursor {b.next_cursor}")
            check(r.query_index < total, f"query {r.query_index} >= total_queries {total}")
            check_ranking(list(r.items), list(r.scores), stream_k, None, f"stream query {r.query_index}")
            check(all(i < info.num_items for i in r.items), f"stream query {r.query_index}: item out of range {list(r.items)}")
            indices.append(r.query_index)
        check(b.next_cursor > previous_cursor, f"next_cursor did not advance: {b.next_cursor}")
        previous_cursor = b.next_cursor
    check(indices == list(range(shard, total, count)), f"shard {shard}/{count}: {len(indices)} queries, not every index of the shard")
    by_index = {r.query_index: r for b in batches for r in b.rankings}
    print(f"StreamRankings shard {shard}/{count}: {len(indices)} of {total} queries in {len(batches)} messages, k={stream_k}")
    first = batches[0].rankings[0]
    show(f"query {first.query_index} (dense item indices)", list(zip(first.items, first.scores)))

    # Resume from the first message's cursor: the rest of the shard again, the same rankings.
    worst = 0.0
    if len(batches) > 1:
        resumed = [r for b in stream(batches[0].next_cursor) for r in b.rankings]
        check(
            [r.query_index for r in resumed] == [i for i in indices if i >= batches[0].next_cursor],
            "a resumed stream does not continue where the cursor points",
        )
        for r in resumed:
            before = by_index[r.query_index]
            worst = max(
                worst,
                check_same(
                    list(zip(r.items, r.scores)), list(zip(before.items, before.scores)), f"resumed query {r.query_index}"
                ),
            )
        print(f"  resumed at cursor {batches[0].next_cursor}: {len(resumed)} queries, same rankings")

    # Each streamed training query equals Rank on the same input with its target excluded.
    compared = 0
    if data is not None:
        instances = list(data.instances(info.sequence_length, 1))
        check(total == len(instances), f"the teacher streams {total} queries, the data has {len(instances)} training windows")
        for index in indices[:: max(1, len(indices) // args.cross_checks)][: args.cross_checks]:
            user, inputs, targets = instances[index]
            if not inputs:
                continue  # an empty input means "the user's history" to Rank
            r = by_index[index]
            check(not set(targets) & set(r.items), f"stream query {index}: its own target {targets} is ranked")
            got = rank(
                pb.common.Query(user_id=data.users[user], recent_items=[data.items[i] for i in inputs]),
                stream_k,
                exclude_items=[data.items[i] for i in targets],
            )
            streamed = [(data.items[i], s) for i, s in zip(r.items, r.scores)]
            worst = max(worst, check_same(streamed, got, f"stream query {index} vs Rank"))
            compared += 1
        print(f"  {compared} streamed queries equal Rank on the same input (max |score diff| {worst:.2e})")
    summary["teacher"].update(
        shard=shard, shard_count=count, total_queries=total, shard_queries=len(indices),
        messages=len(batches), cross_checked=compared, max_score_diff=worst,
    )


def student_checks(pb, addr: str, data: Dataset | None, users: list[str], args, summary: dict) -> None:
    stub = pb.student_grpc.StudentServiceStub(channel(addr))
    info = when_ready(stub.Info, pb.student.StudentInfoRequest())
    m = info.model
    print(
        f"student {addr}: {m.model_kind} d={m.dim} items={m.num_items} users={m.num_users} L={m.sequence_length} "
        f"version={m.version} kernel={info.kernel} params={m.num_parameters}"
    )
    check(m.num_items > 0, f"student Info: {info}")
    if data is not None:
        check(m.num_items == len(data.items), f"student serves {m.num_items} items, the data has {len(data.items)}")
    k = args.k
    requests = [pb.student.RecommendRequest(query=pb.common.Query(user_id=u), k=k) for u in users]
    singles = []
    for user, request in zip(users, requests):
        response = stub.Recommend(request, timeout=TIMEOUT_S)
        got = [(s.item_id, s.score) for s in response.items]
        show(f"Recommend user {user}", got)
        check(response.model_version == m.version, f"Recommend answered by {response.model_version}, Info says {m.version}")
        check(not response.fallback, f"Recommend user {user}: popularity fallback for a known user")
        expected = None
        if data is not None:
            seen = {data.items[i] for i in data.train[data.user_index[user]]}
            check(not seen & {i for i, _ in got}, f"Recommend user {user}: seen items returned")
            check(all(i in data.item_index for i, _ in got), f"Recommend user {user}: unknown item ids")
            expected = min(k, m.num_items - len(seen))
        check_ranking([i for i, _ in got], [s for _, s in got], k, expected, f"Recommend user {user}")
        singles.append(got)

    # A batch: the same requests plus one from recent items alone, excluding an item.
    recent = [singles[0][0][0]]
    extra = pb.student.RecommendRequest(
        query=pb.common.Query(recent_items=recent), k=k, exclude_items=[singles[0][1][0]]
    )
    batch = stub.RecommendBatch(pb.student.RecommendBatchRequest(requests=requests + [extra]), timeout=TIMEOUT_S)
    check(len(batch.responses) == len(requests) + 1, f"RecommendBatch: {len(batch.responses)} answers for {len(requests) + 1}")
    check(batch.model_version == m.version, f"RecommendBatch answered by {batch.model_version}")
    worst = 0.0
    for user, single, response in zip(users, singles, batch.responses):
        got = [(s.item_id, s.score) for s in response.items]
        worst = max(worst, check_same(got, single, f"RecommendBatch user {user} vs Recommend"))
    last = [(s.item_id, s.score) for s in batch.responses[-1].items]
    show(f"RecommendBatch recent {recent} without {singles[0][1][0]}", last)
    excluded = set(recent) | {singles[0][1][0]}
    check(not excluded & {i for i, _ in last}, f"RecommendBatch: excluded or recent items returned: {excluded & {i for i, _ in last}}")
    check_ranking([i for i, _ in last], [s for _, s in last], k, min(k, m.num_items - len(excluded)), "RecommendBatch recent-items query")
    print(f"RecommendBatch: {len(batch.responses)} answers, each equal to Recommend (max |score diff| {worst:.2e})")
    summary["student"] = {"version": m.version, "users": len(users), "batch": len(batch.responses), "max_score_diff": worst}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", metavar="HOST:PORT", help="teacher-svc address")
    parser.add_argument("--student", metavar="HOST:PORT", help="student-svc address")
    parser.add_argument("--data", type=Path, help="the prepared dataset folder the services use")
    parser.add_argument("--user", action="append", default=[], help="raw user id to query (repeatable)")
    parser.add_argument("--users", type=int, default=3, help="with --data and no --user: how many users to query")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--stream-k", type=int, default=10, help="k of the streamed rankings")
    parser.add_argument("--shard-index", type=int, default=0)
    parser.add_argument("--shard-count", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64, help="queries per streamed message")
    parser.add_argument("--cross-checks", type=int, default=20, help="streamed queries compared with Rank (needs --data)")
    parser.add_argument("--build-dir", type=Path, default=rdproto.DEFAULT_BUILD_DIR, help="where the stubs are generated")
    parser.add_argument("--proto-root", type=Path, default=rdproto.DEFAULT_PROTO_ROOT)
    parser.add_argument("--json", type=Path, help="write a summary of the checks here")
    args = parser.parse_args()
    if not args.teacher and not args.student:
        parser.error("give --teacher, --student or both")
    if args.shard_count < 1 or not 0 <= args.shard_index < args.shard_count:
        parser.error(f"--shard-index {args.shard_index} is not below --shard-count {args.shard_count}")
    if args.k < 1 or args.stream_k < 1:
        parser.error("--k and --stream-k must be at least 1")

    pb = rdproto.load(args.proto_root, args.build_dir)
    data = Dataset(args.data) if args.data else None
    users = list(args.user)
    if data is not None:
        unknown = [u for u in users if u not in data.user_index]
        if unknown:
            parser.error(f"users {unknown} are not in {args.data}/users.txt")
    if not users:
        if data is None:
            parser.error("give --user or --data")
        # The first users with at least two training items, spread over the dataset.
        candidates = [u for u, seq in zip(data.users, data.train) if len(seq) >= 2]
        step = max(1, len(candidates) // max(args.users, 1))
        users = candidates[::step][: args.users]
    summary: dict = {"users": users}
    try:
        if args.teacher:
            teacher_checks(pb, args.teacher, data, users, args, summary)
        if args.student:
            student_checks(pb, args.student, data, users, args, summary)
    except CheckFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        print(f"FAILED: gRPC {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
